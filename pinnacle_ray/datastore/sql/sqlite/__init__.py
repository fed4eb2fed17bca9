"""What only the SQLite backend needs: the connectorx shard reader, the staging files that
take parallel bulk writes without queueing on SQLite's one write lock, and SQLite's text
encoding of dates and times."""
