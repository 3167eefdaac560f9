"""dideban.api: the open data API over the store (OONI-compatible where OONI has the endpoint).

- `dideban.api.app.create_app(db_path, *, query_timeout=5.0, dashboard=True, threads=None,
  hold_connection=False, keep_open=1.0, max_in_flight=32) -> FastAPI`: the API and (by
  default) the dashboard of `dideban.web`, read-only over one store file.
- `dideban.api.server.start_server(db_path, *, host="127.0.0.1", port=0, **app_options)
  -> RunningServer` (`.url`, `.stop()`): the same in a background thread.
- `dideban.api.reader.Reader`: read-only queries with a time limit; one connection per burst
  of queries, closed after 0.2 s idle or 1 s open, so `dideban ingest` writes in the gaps.
- `dideban serve --db FILE --host H --port P`: the command (`dideban.api.cli`).
"""
