"""Voting rounds with signed, verifiable ballots: creation, casting (online, paper, proxy),
scheduled opening and closing, tallies under each question's decision rule, objections and
the final result, receipts and the public board (docs/ballot-format.md)."""
