"""The sweep on a Dask cluster (a LocalCluster of two worker processes) writes the same bytes as the
serial run; workers running other model code, and a scheduler that cannot be reached, are refused
as bad input."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path
from typing import Any

import pytest
from test_sweep import TABLES, tiny

from simulator.errors import ConfigError
from simulator.executor import DaskExecutor, LocalExecutor, code_fingerprint
from simulator.sweep import load_sweep, run_sweep

distributed = pytest.importorskip("distributed")


def test_dask_cluster_rows_are_byte_identical_to_the_serial_run(tmp_path: Path) -> None:
    path = tiny(tmp_path, grid={"kernel.prep_new_page": ["irq_off", "second_pass"]}, replications=1)
    run_sweep(load_sweep(path), tmp_path / "serial", LocalExecutor(1))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        res = run_sweep(load_sweep(path), tmp_path / "dask", DaskExecutor(client))
    assert res.ran == 8
    for name in TABLES:
        assert filecmp.cmp(tmp_path / "serial" / name, tmp_path / "dask" / name, shallow=False), name
    meta = json.loads((tmp_path / "dask" / "metadata.json").read_text())
    assert meta["execution"]["backend"] == "dask" and meta["execution"]["workers"] == 2
    assert meta["execution"]["scheduler"].startswith("tcp://")
    assert meta["versions"]["distributed"] == distributed.__version__


class _FakeClient:
    def __init__(self, prints: dict[str, str]) -> None:
        self.prints = prints

    def run(self, fn: Any) -> dict[str, str]:
        return self.prints


def test_workers_with_other_model_code_are_refused() -> None:
    ex = DaskExecutor("tcp://nowhere:8786")
    ex._check_workers(_FakeClient({"tcp://a:1": code_fingerprint()}))  # type: ignore[arg-type]
    assert ex.workers == 1
    with pytest.raises(ConfigError) as err:
        ex._check_workers(_FakeClient({"tcp://a:1": code_fingerprint(), "tcp://b:2": "0" * 64}))  # type: ignore[arg-type]
    msg = str(err.value)
    assert msg.startswith("command line: --scheduler: worker tcp://b:2 runs other pagesim model code")
    with pytest.raises(ConfigError, match="has no workers"):
        ex._check_workers(_FakeClient({}))  # type: ignore[arg-type]


def test_unreachable_scheduler_is_bad_input(tmp_path: Path) -> None:
    ex = DaskExecutor("tcp://127.0.0.1:9", timeout="1s")
    with pytest.raises(ConfigError) as err:
        run_sweep(load_sweep(tiny(tmp_path)), tmp_path / "out", ex)
    assert str(err.value).startswith("command line: --scheduler: cannot connect to the Dask scheduler")
    assert not (tmp_path / "out").exists()
