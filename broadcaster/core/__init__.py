"""What every stage stands on: configuration, the database and its models, errors, the ledger,
permissions, the message lifecycle, identity, contacts, redaction and the checks on typed text."""
