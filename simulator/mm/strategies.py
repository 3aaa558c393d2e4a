"""How a caller asks for N order-0 pages, and how it gives them back.

The four allocation strategies argued over in the bulk allocator's review:
- single:     one alloc_pages_node() per page (5.11 page_pool, 5.12 svc_alloc_arg);
- bulk_list:  the seed's __alloc_pages_bulk_nodemask() onto a list_head, which the caller then
              walks (list_del each page) into its own array;
- bulk_array: the merged alloc_pages_bulk_array(): fills the NULL entries of the caller's array;
- pagevec:    bulk calls of at most PAGEVEC_SIZE (15) pages into a pagevec, copied into the
              caller's array after each call.
Each function makes one *attempt* as the API defines it and returns the pages it got, in the
caller's array order; callers that need every page (sunrpc) loop and sleep themselves.

Free strategies: one_by_one (put_page per page of an array, or list_del and __free_pages per
page of a list, as page_bench04_bulk frees each form), free_unref_page_list (the release_pages()
path) and free_pages_bulk (the seed's list API: __free_pages_ok per page).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import simpy

from simulator.machine.cache import ASYNC
from simulator.machine.tape import PAGE, Spend, Touch
from simulator.mm.gfp import Gfp
from simulator.mm.mmzone import PAGEVEC_SIZE
from simulator.mm.page_alloc import (
    PageArray,
    PageList,
    __alloc_pages_bulk,
    free_pages_bulk,
    free_unref_page_list,
)
from simulator.mm.page_alloc_run import alloc_pages_node_run, free_unref_page_run

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU
    from simulator.mm.machine import Machine

STRATEGIES = ("single", "bulk_list", "bulk_array", "pagevec")
FREE_STRATEGIES = ("one_by_one", "free_unref_page_list", "free_pages_bulk")


@dataclass
class CallerBuffers:
    """The memory a caller brings to the allocator: its page array (capacity pages), a
    list_head on its stack, and a struct pagevec (nr + 15 pointers: two cache lines)."""

    scope: str
    array: PageArray
    list_head_line: int
    pagevec: PageArray

    @classmethod
    def create(cls, m: Machine, scope: str, node: int, capacity: int) -> CallerBuffers:
        nlines = max(1, -(-capacity * 8 // 64))
        array = PageArray([None] * capacity, m.registry.alloc(f"{scope}.array", node, nlines))
        head = m.registry.alloc(f"{scope}.list_head", node)
        pvec = PageArray([None] * PAGEVEC_SIZE, m.registry.alloc(f"{scope}.pagevec", node, 2))
        return cls(scope, array, head, pvec)


def alloc_attempt(
    cpu: CPU, strategy: str, gfp: Gfp, nid: int, n: int, buf: CallerBuffers
) -> Generator[simpy.Event, None, list[int]]:
    """One attempt to get `n` pages with `strategy`; returns the pages obtained (maybe fewer).

    The pages end in `buf.array.slots[0:len]` (the caller's array), as page_pool's alloc.cache
    and nfsd's rq_pages hold them; the caller clears the slots it consumes."""
    c = cpu.costs
    arr = buf.array
    if n > len(arr.slots):
        raise ValueError(f"{buf.scope}: asked for {n} pages into an array of {len(arr.slots)}")
    if strategy == "single":
        # for each NULL slot: alloc_pages_node(), stop at the first failure, store the page
        slots = arr.slots
        holes = [i for i in range(n) if slots[i] is None]
        if not holes:
            return []
        lines = np.array([arr.line(i) | ASYNC for i in holes], dtype=np.int64)  # the slot stores
        got, _ = yield from alloc_pages_node_run(
            cpu, gfp, nid, len(holes), epilogue=(Touch((lines,)), Spend(c.list_line))
        )
        for i, page in zip(holes, got):
            slots[i] = page
        return got
    if strategy == "bulk_list":
        plist = PageList([], buf.list_head_line)
        want = sum(1 for i in range(n) if arr.slots[i] is None)
        if want == 0:
            return []
        yield from __alloc_pages_bulk(cpu, gfp, nid, None, want, page_list=plist)
        return _list_to_array(cpu, plist, arr, n)
    if strategy == "bulk_array":
        view = PageArray(arr.slots[:n], arr.line_base)
        before = list(view.slots)
        yield from __alloc_pages_bulk(cpu, gfp, nid, None, n, page_array=view)
        arr.slots[:n] = view.slots
        return [p for p, old in zip(view.slots, before) if old is None and p is not None]
    if strategy == "pagevec":
        return (yield from _pagevec_attempt(cpu, gfp, nid, n, buf))
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


def _list_to_array(cpu: CPU, plist: PageList, arr: PageArray, n: int) -> list[int]:
    """The caller walks the list: list_del each page, store it in the next NULL slot."""
    c = cpu.costs
    debug = cpu.machine.kconfig.debug_list
    got: list[int] = []
    lines: list[int] = []
    i = 0
    for k, pfn in enumerate(plist.pages):
        while i < n and arr.slots[i] is not None:
            i += 1
        nxt = plist.pages[k + 1] if k + 1 < len(plist.pages) else plist.head_line
        lines += [pfn, nxt, plist.head_line, arr.line(i) | ASYNC]
        arr.slots[i] = pfn
        got.append(pfn)
    cpu.touch(lines)
    cpu.spend(len(got) * (4 * c.list_line + (c.list_del_check if debug else 0.0)))
    plist.pages.clear()
    return got


def _pagevec_attempt(
    cpu: CPU, gfp: Gfp, nid: int, n: int, buf: CallerBuffers
) -> Generator[simpy.Event, None, list[int]]:
    """Bulk calls of at most 15 pages into the pagevec, each copied into the caller's array."""
    c = cpu.costs
    arr = buf.array
    pvec = buf.pagevec
    holes = [i for i in range(n) if arr.slots[i] is None]
    got: list[int] = []
    while len(got) < len(holes):
        k = min(PAGEVEC_SIZE, len(holes) - len(got))
        view = PageArray([None] * k, pvec.line_base)
        cpu.touch([pvec.line_base])  # pagevec_init(): pvec->nr = 0
        filled = yield from __alloc_pages_bulk(cpu, gfp, nid, None, k, page_array=view)
        batch = [p for p in view.slots if p is not None]
        lines: list[int] = []
        for j, pfn in enumerate(batch):
            slot = holes[len(got)]
            arr.slots[slot] = pfn
            lines += [pvec.line(j), arr.line(slot) | ASYNC]
            got.append(pfn)
        cpu.touch(lines)
        cpu.spend(len(batch) * 2 * c.list_line)
        if filled < k:
            break
    return got


def free_attempt(
    cpu: CPU, how: str, pages: list[int], buf: CallerBuffers, from_array: bool = False
) -> Generator[simpy.Event, None, None]:
    """Give `pages` back with the free strategy `how`. With `from_array`, the pages sit in the
    caller's array (slots 0..n-1) and one_by_one frees them as page_bench04_bulk's array variant
    does: `put_page(array[j]); array[j] = NULL;` (a load and a store on the slot's line)."""
    if how == "one_by_one":
        if from_array:
            c = cpu.costs
            lines = np.array([buf.array.line(j) for j in range(len(pages))], dtype=np.int64)
            yield from free_unref_page_run(cpu, pages, prologue=(Touch((lines,)), Spend(2 * c.op)))
        else:
            yield from free_unref_page_run(cpu, pages)
    elif how == "free_unref_page_list":
        yield from free_unref_page_list(cpu, pages)
    elif how == "free_pages_bulk":
        plist = PageList(list(pages), buf.list_head_line)
        yield from free_pages_bulk(cpu, plist)
    else:
        raise ValueError(f"unknown free strategy {how!r}; expected one of {FREE_STRATEGIES}")


def free_list_attempt(cpu: CPU, how: str, plist: PageList) -> Generator[simpy.Event, None, None]:
    """Give back the pages linked on `plist` with the free strategy `how`. one_by_one is
    page_bench04_bulk's list variant (my_free_pages_bulk): list_for_each_entry_safe, then
    list_del(&page->lru) and __free_pages(page, 0) for each page."""
    pages = list(plist.pages)
    if how == "one_by_one":
        c = cpu.costs
        debug = cpu.machine.kconfig.debug_list
        nxt = np.array([*pages[1:], plist.head_line], dtype=np.int64)
        # list_del: the page's own lru (loaded by the walk), the next entry and the head
        unlink = (
            Touch((PAGE, nxt, plist.head_line)),
            Spend(3 * c.list_line + (c.list_del_check if debug else 0.0)),
        )
        plist.pages.clear()
        yield from free_unref_page_run(cpu, pages, prologue=unlink, via="__free_pages")
    elif how == "free_unref_page_list":
        plist.pages.clear()
        yield from free_unref_page_list(cpu, pages)
    elif how == "free_pages_bulk":
        yield from free_pages_bulk(cpu, plist)
    else:
        raise ValueError(f"unknown free strategy {how!r}; expected one of {FREE_STRATEGIES}")
