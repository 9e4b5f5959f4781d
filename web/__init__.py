"""The web foundation every domain package stands on: extensions, database setup,
errors, security headers, languages and structured logs. No domain logic here."""
