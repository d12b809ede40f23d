"""Records: exports and their verification, retention and purges, legal holds, reports."""
