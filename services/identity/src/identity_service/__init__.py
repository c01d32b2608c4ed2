"""身份: enrolment roster, candidate and staff accounts, login, tokens."""
