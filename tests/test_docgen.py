"""The figures README.md, docs/xdp_redirect.md and docs/nfs.md quote are what the model computes now.

simulator.docgen runs the scenarios behind the quick blocks (the reference replay and Chuck
Lever's NFS mix, a few seconds, once for this module) and renders the tables; the documents'
blocks must equal them. The slow blocks (`--slow`: one to two minutes of simulation) are not run here; their
markers must be in place. After a change to the model's figures, regenerate with
`.venv/bin/python -m simulator.docgen --slow --jobs 2`.
"""

from __future__ import annotations

import pytest

from simulator import docgen


@pytest.fixture(scope="module")
def fresh() -> dict:
    return docgen.blocks()


def test_the_documents_figures_match_a_fresh_run(fresh: dict) -> None:
    assert set(fresh) == {docgen.README, docgen.XDP_DOC, docgen.NFS_DOC}
    for path, blocks in fresh.items():
        text = path.read_text(encoding="utf-8")
        for name, body in blocks.items():
            assert docgen.read_block(text, name) == body, (
                f"{path.name}: block {name} differs from a fresh run: run python -m simulator.docgen"
            )


def test_every_block_has_its_place_and_the_slow_ones_are_not_run_here(fresh: dict) -> None:
    for block in docgen.BLOCKS:
        assert docgen.read_block(block.path.read_text(encoding="utf-8"), block.name) is not None, block.name
        assert (block.name in fresh.get(block.path, {})) is not block.slow


def test_the_reference_table_says_what_was_measured_and_what_the_model_predicts(fresh: dict) -> None:
    table = fresh[docgen.README]["xdp-reference"]
    assert "| `single` (5.11) | 3,677,958 pps |" in table
    assert "| `bulk_list` (the series) | 4,368,926 pps (+18.8 %) |" in table
    assert "| `single` (5.12) | not measured |" in table  # the kernel change on its own
    assert table.count("\n") == 6  # header, rule, 5.11 baseline, four strategies on 5.12


def test_the_nfs_table_sets_the_model_against_chuck_levers_trace(fresh: dict) -> None:
    table = fresh[docgen.NFS_DOC]["nfs-256k"]
    assert "| bulk_array |" in table and "| 4.590 | 1.00 |" in table
    assert "| single |" in table and "| 25.007 | 5.45 |" in table
    assert "| pagevec |" in table and "not measured" in table


def test_replace_blocks_keeps_the_rest_of_the_text() -> None:
    text = "a\n<!-- figures:x -->\nold\n<!-- /figures:x -->\nb\n"
    assert docgen.replace_blocks(text, {"x": "new\nlines"}) == (
        "a\n<!-- figures:x -->\nnew\nlines\n<!-- /figures:x -->\nb\n"
    )
    with pytest.raises(KeyError):
        docgen.replace_blocks(text, {"y": ""})
