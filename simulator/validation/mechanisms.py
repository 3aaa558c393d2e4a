"""What each modelled mechanism buys: the model with one mechanism taken back out (as pagesim
priced it before it modelled that mechanism), and the values no source gives, halved and
doubled. Every variant is a ModelChange (simulator/validation/runs.py) plus, for page_bench,
workload parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.calibration import CalibrationInput, derive, load_calibration
from simulator.costs import Costs
from simulator.hardware import Hardware
from simulator.validation.runs import ModelChange

CostEdit = Callable[[Costs, CalibrationInput, Hardware], dict[str, float]]


@dataclass(frozen=True)
class Variant:
    """The model with some mechanisms changed."""

    name: str
    note: str
    toggle: str = "in_context"  # calibration.derive(toggle=...)
    stalls: bool = True  # subtract the replayed stalls from the self times
    cost_edits: tuple[CostEdit, ...] = ()
    kernel: dict[str, Any] = field(default_factory=dict)
    mlp: bool = True
    frontend: bool = True
    hot_scale: float = 1.0
    assumed_scale: float = 1.0
    page_bench: dict[str, Any] = field(default_factory=dict)

    def change(self, hw: Hardware) -> ModelChange:
        cal = load_calibration(hw.calibration_path())
        if not self.stalls and cal.replayed is not None:
            cal = cal.model_copy(update={"replayed": None})
        costs, _ = derive(hw, cal, toggle=self.toggle)
        for edit in self.cost_edits:
            costs = dataclasses.replace(costs, **edit(costs, cal, hw))
        return ModelChange(
            costs=costs,
            kernel=dict(self.kernel),
            mlp=self.mlp,
            frontend=self.frontend,
            hot_scale=self.hot_scale,
            assumed_scale=self.assumed_scale,
        )


def _one_check_price(c: Costs, cal: CalibrationInput, hw: Hardware) -> dict[str, float]:
    """Before: every check at self(__list_add_valid) / 1 (one list_add per packet assumed)."""
    ref = cal.reference
    v = cal.self_percent["__list_add_valid"] / 100 * 1e9 / ref.packets_per_second * ref.clock / hw.cpu.clock
    return {"list_add_check": v, "list_del_check": v}


def _no_free_layers(c: Costs, cal: CalibrationInput, hw: Hardware) -> dict[str, float]:
    """Before: a free cost a call and the atomic, whoever called free_unref_page."""
    return {"put_page": 0.0, "page_frag_free": 0.0}


AS_MODELLED = Variant("as modelled", "every mechanism below in place")

MECHANISMS: tuple[Variant, ...] = (
    Variant(
        "1. CONFIG_DEBUG_LIST checks counted per packet",
        "without: every `__list_add_valid`/`__list_del_entry_valid` check priced at "
        "self(`__list_add_valid`) / 1, as if the packet path did one list_add",
        cost_edits=(_one_check_price,),
    ),
    Variant(
        "2. page_bench frees as the module does",
        "without: the list variant walks its list into an array and frees it with put_page like "
        "the array variant, and put_page / page_frag_free cost no more than __free_pages",
        cost_edits=(_no_free_layers,),
        page_bench={"list_variant": "via_array"},
    ),
    Variant(
        "3. statistics per page in the bulk loop",
        "without: PGALLOC and zone_statistics once per bulk call (the v1 form) in 5.12/5.13",
        kernel={"bulk_statistics": "per_call"},
    ),
    Variant(
        "4. each kernel's IRQ toggle",
        "without: the >= 5.12 tight-loop save+restore (10 cycles) for every kernel, 5.11 "
        "included, subtracted from the 5.11 self times",
        toggle="tight_loop_sti",
    ),
    Variant(
        "5a. memory-level parallelism",
        "without: every access on the dependent chain (prefetches at sum / min(misses, fill buffers))",
        mlp=False,
    ),
    Variant(
        "5b. replayed stalls out of the self times",
        "without: each function's whole self time taken as work, on top of the lines priced",
        stalls=False,
    ),
    Variant(
        "6. the front end (instruction cache, uop cache, BTB)",
        "without: no instruction-side model (fetching, decoding and predicting code costs nothing"
        " beyond the profiled work)",
        frontend=False,
    ),
)

ALL_OUT = Variant(
    "all out",
    "every mechanism above taken out at once (close to pagesim before them)",
    toggle="tight_loop_sti",
    stalls=False,
    cost_edits=(_one_check_price, _no_free_layers),
    kernel={"bulk_statistics": "per_call"},
    mlp=False,
    frontend=False,
    page_bench={"list_variant": "via_array"},
)


def _scale(field_name: str, k: float) -> CostEdit:
    return lambda c, cal, hw: {field_name: getattr(c, field_name) * k}


# Values no source gives (marked "assumed" where they are set), halved and doubled.
ASSUMED: tuple[Variant, ...] = (
    Variant(
        ">= 5.12 toggle x 0.5",
        "the in-context conditional-sti toggle: assumed to keep the tight-loop ratio sti/popf "
        "(10/37); halved",
        cost_edits=(_scale("irq_sti", 0.5),),
    ),
    Variant(">= 5.12 toggle x 2", "the same, doubled", cost_edits=(_scale("irq_sti", 2.0),)),
    Variant(
        "code hot fraction x 0.5",
        "the share of a function's text one run executes (assumed 0.25,"
        " simulator/code_footprints.yaml); halved",
        hot_scale=0.5,
    ),
    Variant("code hot fraction x 2", "the same, doubled", hot_scale=2.0),
    Variant(
        "assumed code sizes x 0.5",
        "the functions with no trace found (0x200 each, or 64 KiB for nfsd's processing); halved",
        assumed_scale=0.5,
    ),
    Variant("assumed code sizes x 2", "the same, doubled", assumed_scale=2.0),
)
