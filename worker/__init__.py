"""mailgate: an email-ingest worker that enforces a support desk's email channel policy.

Every transport (SMTP/LMTP, IMAP, pipe, replay) hands raw bytes to the one pipeline in
``worker.pipeline``; the policy documents under ``policies/`` decide, the store records.
"""

__version__ = "0.1.0"
