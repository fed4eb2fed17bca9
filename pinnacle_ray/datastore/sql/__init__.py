"""The SQLAlchemy datastore (SQLite, PostgreSQL, MySQL/MariaDB, any SQLAlchemy URL):
``store`` is the datastore, ``query`` plans and reads its shards, ``read``/``write``/``bulk``
move rows, ``blobs`` keeps artifacts in chunk tables; ``sqlite/`` holds what only SQLite needs.

Nothing is imported here, so ``import pinnacle_ray.datastore.sql.<part>`` loads that part
and SQLAlchemy only when it is used."""
