"""The range of a row id, apart from the tables so that what only checks an id (a CLI option, a
URL rule) does not import the ORM."""

# Row ids are 32-bit INTEGER columns: a larger number names no row, and the CLI, API and console
# refuse it as such rather than let the database driver overflow.
MAX_ID = 2**31 - 1
