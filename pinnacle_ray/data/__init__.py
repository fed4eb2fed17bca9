"""Turn planned read shards into a Ray Dataset whose ReadTasks run in parallel."""

from .datasource import ReadShard, ShardDatasource, read_shards

__all__ = ["ReadShard", "ShardDatasource", "read_shards"]
