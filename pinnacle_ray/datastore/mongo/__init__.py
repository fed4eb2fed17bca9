"""The MongoDB datastore through pymongo: ``store`` is the datastore, ``query`` plans and
reads its shards, ``bson_arrow`` turns BSON documents into Arrow, ``write`` upserts,
``blobs`` keeps artifacts in GridFS.

Nothing is imported here, so pymongo loads only when a part is used."""
