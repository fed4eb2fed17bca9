"""``submit`` and ``jobs list|status|logs|stop``: Ray jobs and their records."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._internal.constants import ray_address
from .._internal.secrets import mask
from ..errors import ClusterUnreachable, ConfigError, PinnacleError
from ._output import EXIT_ERROR, EXIT_OK, emit_json, metrics_text, store_url, table, when

__all__ = ["cmd_jobs_list", "cmd_jobs_logs", "cmd_jobs_status", "cmd_jobs_stop", "cmd_submit"]


def cmd_submit(args: argparse.Namespace) -> int:
    from ..jobs import load_spec, submit_spec
    from ..jobs.tracking import connect_client, resolve_address

    spec = load_spec(args.spec)
    address = resolve_address(args.address)
    record = submit_spec(
        spec,
        address,
        force=args.force,
        working_dir=args.working_dir,
        env_names=args.env,
        pip=args.pip,
        command=args.run,
    )
    sid = record.submission_id
    if not (args.wait or args.follow):
        if args.json:
            emit_json(record.to_dict())
        else:
            print(f"submitted {sid} to {mask(address)}")
            print(f"  status: pinnacle-ray jobs status {sid} --address {mask(address)}")
            print(f"  logs:   pinnacle-ray jobs logs {sid} --follow --address {mask(address)}")
        return EXIT_OK
    if not args.json:
        print(f"submitted {sid} to {mask(address)}", flush=True)
    client = connect_client(address)
    return _finish_job(args, client, sid, spec_store=spec.run.store)


def _finish_job(args: argparse.Namespace, client: Any, sid: str, spec_store: str | None) -> int:
    """Wait for (or follow) a job, then report its reconciled record; exit with its status."""
    from ..jobs.tracking import EXIT_CODES, follow_logs, wait_for

    if args.follow:
        out = sys.stderr if args.json else sys.stdout
        for chunk in follow_logs(client, sid):
            out.write(chunk)
            out.flush()
        status = wait_for(client, sid)
    else:
        status = wait_for(
            client,
            sid,
            on_status=None if args.json else lambda s: print(f"  {sid}: {s}", flush=True),
        )
    record = _job_record(args, sid, client, known_store=spec_store)
    _print_record(args, record)
    return EXIT_CODES.get(status, EXIT_ERROR)


def _job_record(
    args: argparse.Namespace, sid: str, client: Any, known_store: str | None = None
) -> Any:
    """The job's record from the datastore (reconciled with Ray), or Ray's view alone."""
    from ..errors import JobNotFound
    from ..jobs import JobRecords
    from ..jobs.tracking import ray_record, reconcile

    url = known_store or store_url(args, required=False)
    if url is not None:
        import pinnacle_ray as pr

        records = JobRecords(pr.connect(url))
        record = records.find(sid)
        if record is not None:
            return reconcile(records, record, client) if client is not None else record
    if client is not None:
        record = ray_record(client, sid)
        if record is not None:
            return record
    where = f"in {url} " if url else ""
    where += f"or on the Ray cluster at {mask(client._address)}" if client is not None else ""
    raise JobNotFound(f"no job {sid!r} {where}".rstrip() + "; see `pinnacle-ray jobs list`")


def _print_record(args: argparse.Namespace, record: Any) -> None:
    if args.json:
        emit_json(record.to_dict())
        return
    produced = (
        f"model {record.model_name} version {record.model_version}" if record.model_version else ""
    )
    print(f"{record.submission_id}: {record.status}" + (f" ({produced})" if produced else ""))
    for key, value in (
        ("name", record.name),
        ("spec", record.source),
        ("address", record.address),
        ("entrypoint", record.entrypoint),
        ("submitted", when(record.created_at)),
        ("started", when(record.started_at)),
        ("ended", when(record.ended_at)),
        ("metrics", metrics_text(record.metrics or {}, 6)),
        ("error", record.error),
    ):
        if value:
            print(f"  {key:10} {value}")


def _client_for(args: argparse.Namespace, record_address: str | None = None) -> Any:
    from ..jobs.tracking import connect_client

    address = args.address or ray_address() or record_address
    if not address:
        return None
    return connect_client(address)


def cmd_jobs_status(args: argparse.Namespace) -> int:
    try:
        client = _client_for(args, _recorded_address(args, args.id))
    except ClusterUnreachable as exc:
        # The record's own cluster is gone: say so in the record rather than "RUNNING".
        lost = _lost_record(args, args.id, exc)
        if lost is None:
            raise
        _print_record(args, lost)
        return EXIT_OK
    if client is None and store_url(args, required=False) is None:
        raise ConfigError("pass --address (or set RAY_ADDRESS) and/or --store / --spec")
    _print_record(args, _job_record(args, args.id, client))
    return EXIT_OK


def _lost_record(args: argparse.Namespace, sid: str, error: ClusterUnreachable) -> Any:
    """The job's record, marked FAILED when its own cluster refuses connections; None when
    there is no record or the rule does not apply (see ``reconcile_unreachable``)."""
    from ..jobs import JobRecords
    from ..jobs.tracking import reconcile_unreachable

    url = store_url(args, required=False)
    if url is None:
        return None
    import pinnacle_ray as pr

    records = JobRecords(pr.connect(url))
    record = records.find(sid)
    if record is None:
        return None
    address = args.address or ray_address() or record.address
    fixed = reconcile_unreachable(records, record, address, error)
    return fixed if fixed.status != record.status else None


def _recorded_address(args: argparse.Namespace, sid: str) -> str | None:
    url = store_url(args, required=False)
    if url is None:
        return None
    import pinnacle_ray as pr

    from ..jobs import JobRecords

    record = JobRecords(pr.connect(url)).find(sid)
    return record.address if record is not None else None


def cmd_jobs_list(args: argparse.Namespace) -> int:
    from ..jobs import JobRecords
    from ..jobs.tracking import ray_record, reconcile, reconcile_unreachable

    url = store_url(args, required=False)
    records_table = None
    if url is not None:
        import pinnacle_ray as pr

        records_table = JobRecords(pr.connect(url))
        records = records_table.list(args.name)
    else:
        client = _client_for(args)
        if client is None:
            raise ConfigError("pass --store / --spec (job records) or --address (Ray's jobs)")
        records = [
            ray_record(client, j.submission_id) for j in client.list_jobs() if j.submission_id
        ]
        records = [r for r in records if r is not None]
    clients: dict[str, Any] = {}
    failures: dict[str, PinnacleError] = {}
    shown, unverified = [], set()
    for record in records:
        address = args.address or ray_address() or record.address
        if record.active and records_table is not None:
            if address and address not in clients:
                try:
                    clients[address] = _client_for(args, address)
                except PinnacleError as exc:
                    clients[address] = None  # unreachable: shown as recorded unless gone
                    failures[address] = exc
            if address and clients[address] is not None:
                record = reconcile(records_table, record, clients[address])
            elif address and isinstance(failures.get(address), ClusterUnreachable):
                record = reconcile_unreachable(records_table, record, address, failures[address])
            if record.active and (not address or clients[address] is None):
                unverified.add(record.submission_id)
        shown.append(record)
    if args.json:
        emit_json([{**r.to_dict(), "verified": r.submission_id not in unverified} for r in shown])
        return EXIT_OK
    if not shown:
        print("no jobs recorded" + (f" in {url}" if url else ""))
        return EXIT_OK
    rows = [
        (
            r.submission_id,
            r.name,
            r.status
            + (" (unverified: cluster unreachable)" if r.submission_id in unverified else ""),
            r.model_version or "",
            when(r.created_at or r.started_at),
            when(r.ended_at),
            (r.error or "")[:60],
        )
        for r in shown
    ]
    print(table(rows, ["id", "name", "status", "version", "submitted (UTC)", "ended", "error"]))
    return EXIT_OK


def cmd_jobs_logs(args: argparse.Namespace) -> int:
    from ..jobs.tracking import EXIT_CODES, TERMINAL, job_logs

    client = _client_for(args, _recorded_address(args, args.id))
    if client is None:
        raise ConfigError("pass --address http://<head>:8265 (or set RAY_ADDRESS)")
    if not args.follow:
        sys.stdout.write(job_logs(client, args.id))
        return EXIT_OK
    record = _job_record(args, args.id, client)
    if record.status in TERMINAL:
        sys.stdout.write(job_logs(client, args.id))
        sys.stdout.flush()
        print(f"{args.id}: {record.status}", file=sys.stderr)
        return EXIT_CODES.get(record.status, EXIT_ERROR)
    args.json = False
    return _finish_job(args, client, args.id, spec_store=None)


def cmd_jobs_stop(args: argparse.Namespace) -> int:
    from ..jobs.tracking import stop_job

    client = _client_for(args, _recorded_address(args, args.id))
    if client is None:
        raise ConfigError("pass --address http://<head>:8265 (or set RAY_ADDRESS)")
    stop_job(client, args.id)
    record = _job_record(args, args.id, client)
    _print_record(args, record)
    return EXIT_OK
