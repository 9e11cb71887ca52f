"""Bounces: delivery status reports read from the sending mailbox, matched to their jobs."""
