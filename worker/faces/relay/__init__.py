"""The SMTP relay intake: password-only tools send to mailpipe, mailpipe sends with OAuth."""
