"""Yishi's cryptography: PyNaCl and the standard library only. No Flask, no database,
no global keys — keys and parameters are passed in. Formats are written down in docs/."""
