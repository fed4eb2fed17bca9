"""A MongoDB stand-in: a small wire-protocol server over ``mongomock``, for tests.

Test a pipeline that reads from and writes to MongoDB on a machine without a MongoDB server:
Ray's read tasks run in separate worker processes, so an in-process mock client would be
invisible to them. ``MongoStandIn`` speaks the MongoDB wire protocol (``OP_MSG``, plus
the legacy ``OP_QUERY`` handshake) on a localhost port and runs each command against one
shared ``mongomock`` client; the real ``pymongo`` client is used unchanged, by your driver
process and by every Ray worker on this machine, so pinnacle_ray's own code path runs end
to end. pinnacle_ray's tests and ``examples/mongo_reviews.py`` use it.

It implements the commands pinnacle_ray and pymongo send (hello, ping, find/getMore,
aggregate, count, insert/update/delete, indexes, collections) — not sessions,
transactions, authentication (any credentials are refused, as a server refuses wrong
ones), replication or compression. It is no server to time or to keep data in: the data
lives in the process that started it, until it stops. Needs ``mongomock`` and ``pymongo``:
the ``testing`` extra (``pip install "pinnacle-ray[testing]"``); without them, starting
one raises ``MissingExtra`` naming that command.

Example::

    import pinnacle_ray as pr
    from pinnacle_ray.testing.mongo import MongoStandIn

    server = MongoStandIn()                    # 127.0.0.1, a free port
    url = server.uri("shop")                   # mongodb://127.0.0.1:<port>/shop?...
    store = pr.connect(url)
    store.write("reviews", [{"_id": 1, "stars": 5}], key="_id")
    assert store.find("reviews").count() == 1
    server.close()                             # or: with MongoStandIn() as server: ...
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from typing import Any

from .._internal.extras import needs_extra

with needs_extra("testing", "the MongoDB stand-in"):
    import bson
    from bson.codec_options import CodecOptions

__all__ = ["MongoStandIn"]

logger = logging.getLogger("pinnacle_ray.standin")

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
MAX_WIRE_VERSION = 21  # MongoDB 7.0
_CODEC = CodecOptions(tz_aware=False)
_LOCK_FREE = {"hello", "ismaster", "ping", "buildinfo", "endsessions"}


class MongoStandIn:
    """A MongoDB stand-in on ``127.0.0.1:<free port>``, served from a background thread
    of this process until ``close`` (or the end of a ``with`` block).

    Args:
        host: the address to listen on; keep the default unless Ray workers on other
            machines must reach it.
        port: the port; 0 (the default) picks a free one.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        with needs_extra("testing", "the MongoDB stand-in"):
            import mongomock  # imported only when a stand-in is started

        self._engine = _Engine(mongomock.MongoClient(tz_aware=False))
        self._server = _Server((host, port), _Handler)
        self._server.engine = self._engine
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="mongo-standin", daemon=True
        )
        self._thread.start()

    def uri(self, database: str = "test") -> str:
        """A ``mongodb://`` URL for ``database`` on this server (direct connection)."""
        return (
            f"mongodb://{self.host}:{self.port}/{database}"
            "?directConnection=true&serverSelectionTimeoutMS=5000"
        )

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> MongoStandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    engine: _Engine


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        engine = self.server.engine  # type: ignore[attr-defined]
        while True:
            header = _recv(sock, 16)
            if header is None:
                return
            length, request_id, _to, opcode = struct.unpack("<iiii", header)
            body = _recv(sock, length - 16)
            if body is None:
                return
            if opcode == OP_MSG:
                command = _parse_msg(body)
                reply = engine.run(command)
                payload = struct.pack("<I", 0) + b"\x00" + bson.encode(reply)
                op = OP_MSG
            elif opcode == OP_QUERY:
                command = _parse_query(body)
                reply = engine.run(command)
                payload = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(reply)
                op = OP_REPLY
            else:
                return  # an opcode we do not speak: drop the connection
            out = struct.pack("<iiii", 16 + len(payload), next(_ids), request_id, op) + payload
            sock.sendall(out)


_ids = itertools.count(1)


def _recv(sock: socket.socket, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        try:
            chunk = sock.recv(n - got)
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _parse_msg(body: bytes) -> dict[str, Any]:
    (flags,) = struct.unpack_from("<I", body, 0)
    end = len(body) - (4 if flags & 1 else 0)  # checksumPresent
    pos = 4
    command: dict[str, Any] = {}
    sequences: dict[str, list[Any]] = {}
    while pos < end:
        kind = body[pos]
        pos += 1
        (size,) = struct.unpack_from("<i", body, pos)
        if kind == 0:
            command = bson.decode(body[pos : pos + size], codec_options=_CODEC)
            pos += size
        else:
            section_end = pos + size
            name_end = body.index(b"\x00", pos + 4)
            name = body[pos + 4 : name_end].decode()
            docs = list(bson.decode_iter(body[name_end + 1 : section_end], codec_options=_CODEC))
            sequences[name] = docs
            pos = section_end
    command.update(sequences)
    return command


def _parse_query(body: bytes) -> dict[str, Any]:
    name_end = body.index(b"\x00", 4)
    pos = name_end + 1 + 8  # numberToSkip, numberToReturn
    (size,) = struct.unpack_from("<i", body, pos)
    command = bson.decode(body[pos : pos + size], codec_options=_CODEC)
    namespace = body[4:name_end].decode()
    command.setdefault("$db", namespace.split(".", 1)[0])
    return command


class _CommandError(Exception):
    def __init__(self, message: str, code: int, name: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name


class _Engine:
    """Executes decoded commands against a mongomock client, one at a time."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.cursors: dict[int, tuple[str, Iterator[Any]]] = {}
        # Secondary indexes are kept here, not in mongomock: its unique-index check scans
        # the collection on every insert (2000 inserts: 8 s). Uniqueness is checked per
        # command against one scan of the key fields instead.
        self.indexes: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.cursor_ids = itertools.count(1000)
        self.connections = itertools.count(1)

    def run(self, command: dict[str, Any]) -> dict[str, Any]:
        import mongomock

        name = next(iter(command), "")
        handler = getattr(self, f"_cmd_{name.lower()}", None)
        try:
            if handler is None:
                raise _CommandError(f"no such command: '{name}'", 59, "CommandNotFound")
            if name.lower() in _LOCK_FREE:
                # Answered at once even while a long command runs: pymongo's monitor would
                # otherwise time out its heartbeat and cancel the running operation.
                reply = handler(command)
            else:
                with self.lock:
                    reply = handler(command)
        except _CommandError as exc:
            return {"ok": 0.0, "errmsg": str(exc), "code": exc.code, "codeName": exc.name}
        except mongomock.OperationFailure as exc:
            code = exc.code or 2
            return {"ok": 0.0, "errmsg": str(exc), "code": code, "codeName": "BadValue"}
        except (NotImplementedError, ValueError, TypeError, KeyError) as exc:
            return {"ok": 0.0, "errmsg": str(exc) or repr(exc), "code": 2, "codeName": "BadValue"}
        reply.setdefault("ok", 1.0)
        return reply

    # -- handshake and server info ----------------------------------------------------------
    def _cmd_hello(self, command: dict[str, Any]) -> dict[str, Any]:
        return {
            "helloOk": True,
            "ismaster": True,
            "isWritablePrimary": True,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000,
            "localTime": dt.datetime.now(dt.timezone.utc),
            "connectionId": next(self.connections),
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
        }

    _cmd_ismaster = _cmd_hello

    def _cmd_ping(self, command: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _cmd_buildinfo(self, command: dict[str, Any]) -> dict[str, Any]:
        return {"version": "7.0.0-standin", "versionArray": [7, 0, 0, 0]}

    def _cmd_endsessions(self, command: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _cmd_saslstart(self, command: dict[str, Any]) -> dict[str, Any]:
        raise _CommandError("Authentication failed.", 18, "AuthenticationFailed")

    _cmd_authenticate = _cmd_saslstart

    # -- collections and indexes ------------------------------------------------------------
    def _db(self, command: dict[str, Any]) -> Any:
        return self.client[command.get("$db", "test")]

    def _cmd_listcollections(self, command: dict[str, Any]) -> dict[str, Any]:
        db = self._db(command)
        wanted = (command.get("filter") or {}).get("name")
        names = [n for n in db.list_collection_names() if wanted is None or n == wanted]
        docs = [{"name": n, "type": "collection", "options": {}, "info": {}} for n in names]
        return self._cursor_reply(f"{db.name}.$cmd.listCollections", iter(docs), command, {})

    def _cmd_listdatabases(self, command: dict[str, Any]) -> dict[str, Any]:
        names = self.client.list_database_names()
        return {"databases": [{"name": n, "sizeOnDisk": 0, "empty": False} for n in names]}

    def _cmd_create(self, command: dict[str, Any]) -> dict[str, Any]:
        db = self._db(command)
        if command["create"] in db.list_collection_names():
            raise _CommandError(
                f"Collection {db.name}.{command['create']} already exists.", 48, "NamespaceExists"
            )
        db.create_collection(command["create"])
        return {}

    def _cmd_drop(self, command: dict[str, Any]) -> dict[str, Any]:
        db = self._db(command)
        db.drop_collection(command["drop"])
        self.indexes.pop((db.name, command["drop"]), None)
        return {}

    def _cmd_dropdatabase(self, command: dict[str, Any]) -> dict[str, Any]:
        self.client.drop_database(command.get("$db", "test"))
        return {}

    def _cmd_createindexes(self, command: dict[str, Any]) -> dict[str, Any]:
        db = self._db(command)
        name = command["createIndexes"]
        if name not in db.list_collection_names():
            db.create_collection(name)
        known = self.indexes.setdefault((db.name, name), {})
        before = 1 + len(known)
        for spec in command["indexes"]:
            index = {"key": dict(spec["key"]), "unique": bool(spec.get("unique"))}
            index_name = spec.get("name") or "_".join(f"{k}_{v}" for k, v in spec["key"].items())
            if index_name in known:
                if known[index_name] != index:
                    raise _CommandError(
                        f"An existing index has the same name ({index_name}) but different options",
                        86,
                        "IndexKeySpecsConflict",
                    )
                continue
            if index["unique"]:
                fields = list(index["key"])
                seen: set[tuple[Any, ...]] = set()
                for doc in db[name].find({}):
                    key = _key_of(doc, fields)
                    if key in seen:
                        raise _CommandError(
                            f"E11000 duplicate key error collection: {db.name}.{name} index: "
                            f"{index_name} dup key: {dict(zip(fields, key, strict=True))}",
                            11000,
                            "DuplicateKey",
                        )
                    seen.add(key)
            known[index_name] = index
        return {"numIndexesBefore": before, "numIndexesAfter": 1 + len(known)}

    def _cmd_listindexes(self, command: dict[str, Any]) -> dict[str, Any]:
        db = self._db(command)
        name = command["listIndexes"]
        if name not in db.list_collection_names():
            raise _CommandError(f"ns does not exist: {db.name}.{name}", 26, "NamespaceNotFound")
        docs = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
        for index_name, index in self.indexes.get((db.name, name), {}).items():
            doc = {"v": 2, "key": index["key"], "name": index_name}
            if index["unique"]:
                doc["unique"] = True
            docs.append(doc)
        return self._cursor_reply(f"{db.name}.{name}", iter(docs), command, {})

    def _cmd_dropindexes(self, command: dict[str, Any]) -> dict[str, Any]:
        db = self._db(command)
        known = self.indexes.get((db.name, command["dropIndexes"]), {})
        index = command.get("index", "*")
        if index == "*":
            known.clear()
        else:
            known.pop(index, None)
        return {}

    def _unique_keys(self, db: Any, name: str) -> list[tuple[list[str], dict[tuple, Any]]]:
        """Per unique index of ``name``: its fields and a map of key values to ``_id``."""
        out = []
        for index in self.indexes.get((db.name, name), {}).values():
            if index["unique"]:
                fields = list(index["key"])
                projection = dict.fromkeys(fields, 1)
                keys = {_key_of(d, fields): d["_id"] for d in db[name].find({}, projection)}
                out.append((fields, keys))
        return out

    # -- reads ------------------------------------------------------------------------------
    def _cmd_find(self, command: dict[str, Any]) -> dict[str, Any]:
        db = self._db(command)
        collection = db[command["find"]]
        cursor = collection.find(command.get("filter") or {}, command.get("projection"))
        if command.get("sort"):
            cursor = cursor.sort(list(command["sort"].items()))
        if command.get("skip"):
            cursor = cursor.skip(int(command["skip"]))
        if command.get("limit"):
            cursor = cursor.limit(abs(int(command["limit"])))
        # Evaluate the first document now, so a bad filter fails this command, not a getMore.
        docs = iter(list(cursor))
        return self._cursor_reply(f"{db.name}.{collection.name}", docs, command, command)

    def _cmd_aggregate(self, command: dict[str, Any]) -> dict[str, Any]:
        db = self._db(command)
        collection = db[command["aggregate"]]
        docs = iter(list(collection.aggregate(command.get("pipeline") or [])))
        return self._cursor_reply(
            f"{db.name}.{collection.name}", docs, command, command.get("cursor") or {}
        )

    def _cmd_count(self, command: dict[str, Any]) -> dict[str, Any]:
        collection = self._db(command)[command["count"]]
        return {"n": collection.count_documents(command.get("query") or {})}

    def _cmd_getmore(self, command: dict[str, Any]) -> dict[str, Any]:
        cursor_id = int(command["getMore"])
        if cursor_id not in self.cursors:
            raise _CommandError(f"cursor id {cursor_id} not found", 43, "CursorNotFound")
        namespace, docs = self.cursors.pop(cursor_id)
        batch = list(itertools.islice(docs, int(command.get("batchSize") or 1_000_000)))
        more = self._has_more(docs)
        if more is not None:
            self.cursors[cursor_id] = (namespace, more)
        return {
            "cursor": {
                "id": bson.int64.Int64(cursor_id if more is not None else 0),
                "ns": namespace,
                "nextBatch": batch,
            }
        }

    def _cmd_killcursors(self, command: dict[str, Any]) -> dict[str, Any]:
        killed = [c for c in command.get("cursors", []) if self.cursors.pop(int(c), None)]
        return {"cursorsKilled": killed, "cursorsNotFound": [], "cursorsAlive": []}

    def _cursor_reply(
        self, namespace: str, docs: Iterator[Any], command: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any]:
        size = options.get("batchSize")
        size = 101 if size is None else int(size)
        batch = list(itertools.islice(docs, size))
        more = None if command.get("singleBatch") else self._has_more(docs)
        cursor_id = 0
        if more is not None:
            cursor_id = next(self.cursor_ids)
            self.cursors[cursor_id] = (namespace, more)
        return {"cursor": {"id": bson.int64.Int64(cursor_id), "ns": namespace, "firstBatch": batch}}

    @staticmethod
    def _has_more(docs: Iterator[Any]) -> Iterator[Any] | None:
        for first in docs:
            return itertools.chain([first], docs)
        return None

    # -- writes -----------------------------------------------------------------------------
    def _cmd_insert(self, command: dict[str, Any]) -> dict[str, Any]:
        import mongomock

        db = self._db(command)
        collection = db[command["insert"]]
        unique = self._unique_keys(db, collection.name)
        ordered = command.get("ordered", True)
        n, errors = 0, []
        for i, doc in enumerate(command.get("documents", [])):
            try:
                taken = _taken(doc, unique)
                if taken:
                    raise mongomock.DuplicateKeyError(f"duplicate key {taken}")
                collection.insert_one(doc)
                _claim(doc, unique)
                n += 1
            except mongomock.DuplicateKeyError as exc:
                errors.append({"index": i, "code": 11000, "errmsg": f"E11000 {exc}"})
                if ordered:
                    break
        reply: dict[str, Any] = {"n": n}
        if errors:
            reply["writeErrors"] = errors
        return reply

    def _cmd_update(self, command: dict[str, Any]) -> dict[str, Any]:
        import mongomock

        db = self._db(command)
        collection = db[command["update"]]
        unique = self._unique_keys(db, collection.name)
        ordered = command.get("ordered", True)
        n = modified = 0
        upserted, errors = [], []
        for i, spec in enumerate(command.get("updates", [])):
            try:
                result = self._update_one_spec(collection, spec, unique)
            except (mongomock.DuplicateKeyError, mongomock.WriteError) as exc:
                code = 11000 if isinstance(exc, mongomock.DuplicateKeyError) else exc.code or 2
                errors.append({"index": i, "code": code, "errmsg": str(exc)})
                if ordered:
                    break
                continue
            matched, changed, new_id = result
            n += matched
            modified += changed
            if new_id is not None:
                n += 1
                upserted.append({"index": i, "_id": new_id})
        reply: dict[str, Any] = {"n": n, "nModified": modified}
        if upserted:
            reply["upserted"] = upserted
        if errors:
            reply["writeErrors"] = errors
        return reply

    def _update_one_spec(
        self, collection: Any, spec: dict[str, Any], unique: list[tuple[list[str], dict]]
    ) -> tuple[int, int, Any]:
        """Apply one update statement: (matched, modified, upserted _id or None)."""
        import mongomock

        query, update = spec["q"], spec["u"]
        multi, upsert = bool(spec.get("multi")), bool(spec.get("upsert"))
        # Fast path for what upserts by key send: equality on exactly a unique index's fields.
        for fields, keys in unique:
            if not multi and _is_key_match(query, fields):
                existing = keys.get(tuple(query[f] for f in fields), _NONE)
                if existing is not _NONE:
                    changed = _set_in_place(collection, existing, update)
                    if changed is None:
                        result = collection.update_one({"_id": existing}, update)
                        return result.matched_count, result.modified_count, None
                    return 1, changed, None
                if not upsert:
                    return 0, 0, None
                doc = _upserted_document(query, update)
                if doc is None:  # an update operator we do not build by hand
                    result = collection.update_one(query, update, upsert=True)
                    doc = collection.find_one({"_id": result.upserted_id})
                    collection.delete_one({"_id": result.upserted_id})
                taken = _taken(doc, unique)
                if taken:
                    raise mongomock.DuplicateKeyError(f"duplicate key {taken}")
                collection.insert_one(doc)
                _claim(doc, unique)
                return 0, 0, doc["_id"]
        method = collection.update_many if multi else collection.update_one
        result = method(query, update, upsert=upsert)
        return result.matched_count, result.modified_count, result.upserted_id

    def _cmd_delete(self, command: dict[str, Any]) -> dict[str, Any]:
        collection = self._db(command)[command["delete"]]
        n = 0
        for spec in command.get("deletes", []):
            method = collection.delete_one if spec.get("limit") == 1 else collection.delete_many
            n += method(spec["q"]).deleted_count
        return {"n": n}


_NONE = object()


def _key_of(doc: Any, fields: list[str]) -> tuple[Any, ...]:
    out = []
    for f in fields:
        value = doc
        for part in f.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out.append(value)
    return tuple(out)


def _is_key_match(query: dict[str, Any], fields: list[str]) -> bool:
    return set(query) == set(fields) and not any(
        isinstance(v, dict) and any(str(k).startswith("$") for k in v) for v in query.values()
    )


def _taken(doc: Any, unique: list[tuple[list[str], dict]]) -> dict[str, Any] | None:
    for fields, keys in unique:
        key = _key_of(doc, fields)
        if key in keys and keys[key] != doc.get("_id"):
            return dict(zip(fields, key, strict=True))
    return None


def _claim(doc: Any, unique: list[tuple[list[str], dict]]) -> None:
    for fields, keys in unique:
        keys[_key_of(doc, fields)] = doc["_id"]


def _upserted_document(query: dict[str, Any], update: dict[str, Any]) -> dict[str, Any] | None:
    """The document an upsert inserts, for ``$set``/``$setOnInsert`` updates (else None):
    built here because mongomock finds "no match" by scanning the whole collection."""
    if not set(update) <= {"$set", "$setOnInsert"}:
        return None
    doc: dict[str, Any] = {}
    for source in (query, update.get("$set", {}), update.get("$setOnInsert", {})):
        for path, value in source.items():
            target = doc
            *parents, leaf = path.split(".")
            for part in parents:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    return None
            target[leaf] = copy.deepcopy(value)
    doc.setdefault("_id", bson.ObjectId())
    return doc


def _set_in_place(collection: Any, _id: Any, update: dict[str, Any]) -> int | None:
    """Apply a ``$set``/``$setOnInsert`` update to the stored document ``_id`` directly
    (1 if it changed, else 0), or None when it needs mongomock's general path. mongomock
    finds a document by ``_id`` with a full scan (12 ms per update at 5000 documents)."""
    store = getattr(collection, "_store", None)
    if store is None or not set(update) <= {"$set", "$setOnInsert"} or _id not in store:
        return None
    doc = store[_id]
    changed = 0
    for path, value in update.get("$set", {}).items():
        target = doc
        *parents, leaf = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                return None
        if target.get(leaf, _NONE) != value:
            target[leaf] = copy.deepcopy(value)
            changed = 1
    return changed
