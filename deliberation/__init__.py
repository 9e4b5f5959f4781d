"""Deliberation: proposals, support, threaded discussion, transparent moderation and
notifications. Other packages use `services.change_status` to move a proposal on."""
