"""Boot-time zone numbers against values worked by hand from the Linux 5.12 formulas."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.hardware import Hardware, load_hardware
from simulator.mm.mmzone import ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE, ZONE_NORMAL
from simulator.mm.zone_setup import (
    boot_numbers,
    boot_zone_numbers,
    calculate_normal_threshold,
    calculate_pressure_threshold,
    check_node_memory,
    fls,
    init_per_zone_wmark_min,
    int_sqrt,
    mult_frac,
    pcp_high_and_batch,
    rounddown_pow_of_two,
    set_recommended_min_free_kbytes,
    setup_per_zone_lowmem_reserve,
    setup_per_zone_wmarks,
    x86_64_zone_layout,
    zone_batchsize,
)
from simulator.yamlio import read_yaml_mapping

BROADWELL = Path(__file__).resolve().parents[1] / "hardware" / "broadwell-e5-1650v4.yaml"

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
PAGE = 4096

# The model's 32 GiB node 0 (3 GiB below 4 GiB, 128 MiB reserved), worked out in
# test_layout_single_node_32g: managed pages of DMA, DMA32, Normal, Movable.
M_DMA, M_DMA32, M_NORMAL = 4095, 782336, 7438336
NODE0_32G = [M_DMA, M_DMA32, M_NORMAL, 0]


# --- helpers ------------------------------------------------------------------------------------


def test_int_sqrt_floor():
    assert [int_sqrt(x) for x in (0, 1, 3, 4, 15, 16, 17)] == [0, 1, 1, 2, 3, 4, 4]
    # 22943^2 = 526381249 <= 526385088 < 22944^2 = 526427136
    assert int_sqrt(526385088) == 22943
    with pytest.raises(ValueError):
        int_sqrt(-1)


def test_rounddown_pow_of_two_and_fls():
    assert [rounddown_pow_of_two(x) for x in (1, 2, 3, 95, 96, 128)] == [1, 2, 2, 64, 64, 128]
    with pytest.raises(ValueError):
        rounddown_pow_of_two(0)
    assert [fls(x) for x in (0, 1, 2, 6, 227, 1 << 13)] == [0, 1, 2, 3, 8, 14]


def test_mult_frac_is_exact_floor():
    # 782336 * 10 / 10000 = 782.336
    assert mult_frac(782336, 10, 10000) == 782
    assert mult_frac(999, 10, 10000) == 0


@given(st.integers(min_value=0, max_value=1 << 64))
def test_int_sqrt_property(x):
    r = int_sqrt(x)
    assert r * r <= x < (r + 1) * (r + 1)


# --- pcp batch and high -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("managed", "batch"),
    [
        (0, 0),  # 0/1024 = 0, /4 = 0 -> 1; rounddown(1 + 0) - 1 = 0
        (4095, 0),  # 16 MiB DMA: 4095/1024 = 3, /4 = 0 -> 1; 1 - 1 = 0
        (16384, 3),  # 64 MiB: 16, /4 = 4; rounddown(4 + 2 = 6) = 4; 4 - 1 = 3
        (65536, 15),  # 256 MiB: 64, /4 = 16; rounddown(16 + 8 = 24) = 16; 15
        (131072, 31),  # 512 MiB: 128, /4 = 32; rounddown(32 + 16 = 48) = 32; 31
        (176127, 31),  # 171, /4 = 42; rounddown(42 + 21 = 63) = 32; 31
        (176128, 63),  # 172, /4 = 43; rounddown(43 + 21 = 64) = 64; 63 (688 MiB)
        (262144, 63),  # 1 GiB: 256 pages = 1 MiB (the cap), /4 = 64; rounddown(96) = 64; 63
        (M_DMA32, 63),  # 3 GiB: 764 -> capped at 256 -> 63
        (M_NORMAL, 63),  # 29 GiB
        (TiB // PAGE, 63),  # 1 TiB
    ],
)
def test_zone_batchsize(managed, batch):
    assert zone_batchsize(managed) == batch


@pytest.mark.parametrize(
    ("managed", "high", "batch"),
    [
        (4095, 0, 1),  # DMA: high = 6 * 0 = 0 (taken before batch is raised to 1)
        (16384, 18, 3),
        (65536, 90, 15),
        (131072, 186, 31),
        (M_DMA32, 378, 63),
        (M_NORMAL, 378, 63),
        (TiB // PAGE, 378, 63),
    ],
)
def test_pcp_high_and_batch_default(managed, high, batch):
    assert pcp_high_and_batch(managed) == (high, batch)


def test_pcp_high_and_batch_fraction():
    # high = 7438336 / 8 = 929792; high/4 = 232448 > PAGE_SHIFT*8 = 96, so batch = 96
    assert pcp_high_and_batch(M_NORMAL, 8) == (929792, 96)
    # high = 1000 / 8 = 125; batch = max(1, 125/4 = 31) = 31; 31 <= 96
    assert pcp_high_and_batch(1000, 8) == (125, 31)
    # high = 3 / 8 = 0; batch = max(1, 0) = 1
    assert pcp_high_and_batch(3, 8) == (0, 1)
    # high = 3104 / 8 = 388; 388/4 = 97 > 96 -> 96
    assert pcp_high_and_batch(3104, 8) == (388, 96)
    with pytest.raises(ValueError):
        pcp_high_and_batch(M_NORMAL, 4)  # below MIN_PERCPU_PAGELIST_FRACTION


@given(st.integers(min_value=0, max_value=1 << 40))
def test_batch_is_two_to_the_n_minus_one(managed):
    batch = zone_batchsize(managed)
    assert 0 <= batch <= 63
    assert (batch + 1) & batch == 0  # batch + 1 is a power of two
    high, pcp_batch = pcp_high_and_batch(managed)
    assert high == 6 * batch
    assert pcp_batch == max(1, batch)


@given(st.integers(min_value=0, max_value=1 << 30), st.integers(min_value=0, max_value=1 << 30))
def test_batch_grows_with_the_zone(a, b):
    lo, hi = sorted((a, b))
    assert zone_batchsize(lo) <= zone_batchsize(hi)


# --- min_free_kbytes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lowmem_kbytes", "min_free"),
    [
        (16 * MiB // KiB, 512),  # sqrt(16384 * 16) = 512: the kernel comment's "16MB: 512k"
        (GiB // KiB, 4096),  # sqrt(1048576 * 16) = 4096
        (16 * GiB // KiB, 16384),  # sqrt(16777216 * 16) = 16384
        # 32 GiB: sqrt(33554432 * 16 = 536870912) = 23170.47 -> 23170
        (32 * GiB // KiB, 23170),
        # the model's 32 GiB box: (4095 + 782336 + 7438336) pages * 4 = 32899068 kB;
        # sqrt(32899068 * 16 = 526385088) = 22943.08 -> 22943
        ((M_DMA + M_DMA32 + M_NORMAL) * 4, 22943),
        (TiB // KiB, 131072),  # sqrt(2^30 * 16 = 2^34) = 2^17
        (1024, 128),  # sqrt(16384) = 128, exactly the floor
        (512, 128),  # sqrt(8192) = 90 -> raised to 128
        (4 * TiB // KiB, 262144),  # sqrt(2^32 * 16 = 2^36) = 2^18, exactly the ceiling
        (8 * TiB // KiB, 262144),  # sqrt(2^37) = 370727 -> capped at 262144
    ],
)
def test_init_per_zone_wmark_min(lowmem_kbytes, min_free):
    assert init_per_zone_wmark_min(lowmem_kbytes) == min_free


def test_khugepaged_raises_min_free_kbytes():
    # 3 zones: 512 * 3 * 2 = 3072, + 512 * 3 * 3 * 3 = 13824 -> 16896 pages = 67584 kB
    assert set_recommended_min_free_kbytes(3, 8_000_000, 22943) == 67584
    # capped at 5% of lowmem: 100000 / 20 = 5000 pages = 20000 kB, below the 22943 already set
    assert set_recommended_min_free_kbytes(3, 100_000, 22943) == 22943
    # 2 zones (a node 0 without ZONE_NORMAL): (2048 + 9216) * 4 = 45056
    assert set_recommended_min_free_kbytes(2, 8_000_000, 11584) == 45056


# --- watermarks -----------------------------------------------------------------------------


def test_setup_per_zone_wmarks_32g():
    # pages_min = 22943 >> 2 = 5735; lowmem_pages = 4095 + 782336 + 7438336 = 8224767
    wm = setup_per_zone_wmarks(NODE0_32G, 22943)
    # DMA: min = 5735 * 4095 / 8224767 = 2.86 -> 2; tmp = max(2 >> 2 = 0, 4095 * 10 / 10000 = 4)
    assert wm[ZONE_DMA] == (2, 6, 10)
    # DMA32: min = 5735 * 782336 / 8224767 = 545.5 -> 545; tmp = max(136, 782) = 782
    assert wm[ZONE_DMA32] == (545, 545 + 782, 545 + 2 * 782)
    # Normal: min = 5735 * 7438336 / 8224767 = 5186.6 -> 5186; tmp = max(1296, 7438) = 7438
    assert wm[ZONE_NORMAL] == (5186, 12624, 20062)
    assert wm[ZONE_MOVABLE] == (0, 0, 0)


def test_setup_per_zone_wmarks_min_dominates_small_zone():
    # one 390 MiB zone, min_free_kbytes 65536: pages_min = 16384, all of it in this zone;
    # tmp = max(16384 >> 2 = 4096, 100000 * 10 / 10000 = 100) = 4096
    assert setup_per_zone_wmarks([100000], 65536) == [(16384, 20480, 24576)]


def test_setup_per_zone_wmarks_scale_factor():
    # watermark_scale_factor 200 (2%): tmp = max(1296, 7438336 * 200 / 10000 = 148766.72 -> 148766)
    wm = setup_per_zone_wmarks(NODE0_32G, 22943, watermark_scale_factor=200)
    assert wm[ZONE_NORMAL] == (5186, 5186 + 148766, 5186 + 2 * 148766)


def test_setup_per_zone_wmarks_two_nodes():
    # node 1 adds a 1 TiB Normal zone (managed 1 TiB minus its 1/64 memmap = 264241152 pages).
    # lowmem = 8224767 + 264241152 = 272465919; pages_min = 131072 >> 2 = 32768.
    n1 = TiB // PAGE - TiB // PAGE // 64
    wm = setup_per_zone_wmarks([*NODE0_32G, 0, 0, n1, 0], 131072)
    # node 1 Normal: min = 32768 * 264241152 / 272465919 = 31778.8 -> 31778;
    # tmp = max(7944, 264241152 * 10 / 10000 = 264241.152 -> 264241)
    assert wm[6] == (31778, 31778 + 264241, 31778 + 2 * 264241)
    # node 0 Normal: min = 32768 * 7438336 / 272465919 = 894.6 -> 894; tmp = 7438
    assert wm[2] == (894, 894 + 7438, 894 + 2 * 7438)
    assert wm[4] == wm[5] == wm[7] == (0, 0, 0)


@given(
    st.lists(st.integers(min_value=0, max_value=1 << 28), min_size=1, max_size=16),
    st.integers(min_value=128, max_value=262144),
    st.integers(min_value=1, max_value=1000),
)
def test_wmark_properties(managed, min_free, scale):
    wm = setup_per_zone_wmarks(managed, min_free, scale)
    pages_min = min_free >> 2
    for zone_managed, (lo_min, low, high) in zip(managed, wm, strict=True):
        assert lo_min <= low <= high
        assert high - low == low - lo_min
        if zone_managed >= 10000 // scale + 1:  # the scale-factor gap is at least one page
            assert low < high
    if sum(managed):
        # each min is floored, so together they lose less than one page per zone
        total = sum(w[0] for w in wm)
        assert pages_min - len(managed) < total <= pages_min


# --- lowmem_reserve --------------------------------------------------------------------------


def test_lowmem_reserve_32g():
    r = setup_per_zone_lowmem_reserve(NODE0_32G)
    # DMA (ratio 256): [DMA32] 782336/256 = 3056; [Normal] (782336 + 7438336)/256 = 32112;
    # [Movable] adds 0 and repeats 32112 (5.12 does not zero empty upper zones)
    assert r[ZONE_DMA] == [0, 3056, 32112, 32112]
    # DMA32 (ratio 256): [Normal] 7438336/256 = 29056; [Movable] 29056
    assert r[ZONE_DMA32] == [0, 0, 29056, 29056]
    # Normal (ratio 32): [Movable] 0/32 = 0
    assert r[ZONE_NORMAL] == [0, 0, 0, 0]
    assert r[ZONE_MOVABLE] == [0, 0, 0, 0]


def test_lowmem_reserve_with_movable_and_empty_dma32():
    r = setup_per_zone_lowmem_reserve([4000, 0, 1_000_000, 64_000])
    # DMA: [DMA32] 0/256 = 0; [Normal] 1000000/256 = 3906.25 -> 3906; [Movable] 1064000/256 = 4156
    assert r[ZONE_DMA] == [0, 0, 3906, 4156]
    assert r[ZONE_DMA32] == [0, 0, 0, 0]  # an empty lower zone clears its row
    assert r[ZONE_NORMAL] == [0, 0, 0, 2000]  # 64000/32


def test_lowmem_reserve_zero_ratio_clears():
    r = setup_per_zone_lowmem_reserve(NODE0_32G, ratios=(256, 0, 32, 0))
    assert r[ZONE_DMA32] == [0, 0, 0, 0]
    assert r[ZONE_DMA] == [0, 3056, 32112, 32112]


def test_lowmem_reserve_normal_only_node():
    assert setup_per_zone_lowmem_reserve([0, 0, 1 << 28, 0]) == [[0] * 4] * 4


@given(st.lists(st.integers(min_value=0, max_value=1 << 32), min_size=4, max_size=4))
def test_lowmem_reserve_properties(managed):
    r = setup_per_zone_lowmem_reserve(managed)
    for i in range(4):
        assert all(r[i][j] == 0 for j in range(i + 1))
        assert r[i] == sorted(r[i])  # upper zones only add pages


# --- vmstat thresholds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("managed", "cpus", "threshold"),
    [
        (M_DMA, 6, 6),  # mem = 4095 >> 15 = 0; 2 * fls(6)=3 * (1 + 0) = 6
        (M_DMA32, 6, 36),  # mem = 23; fls = 5; 2 * 3 * 6 = 36
        (M_NORMAL, 6, 54),  # mem = 7438336 >> 15 = 227; fls = 8; 2 * 3 * 9 = 54
        (TiB // PAGE, 6, 90),  # mem = 8192; fls = 14; 2 * 3 * 15 = 90
        (TiB // PAGE, 64, 125),  # 2 * 7 * 15 = 210 -> capped at 125
        # rows of the kernel comment's table that match the formula:
        (235929, 1, 8),  # 0.9 GiB, 1 CPU: mem = 7, fls 3: 2 * 1 * 4 = 8
        (30000, 2, 4),  # < 128 MiB, 2 CPUs: 2 * 2 * 1 = 4
        (30000, 16, 10),  # < 128 MiB, 16 CPUs: 2 * 5 * 1 = 10
        (230400, 16, 40),  # 900 MiB, 16 CPUs: 2 * 5 * 4 = 40
    ],
)
def test_calculate_normal_threshold(managed, cpus, threshold):
    assert calculate_normal_threshold(managed, cpus) == threshold


def test_calculate_pressure_threshold():
    # (12624 - 5186) / 6 = 1239 -> capped at 125
    assert calculate_pressure_threshold(low_wmark=12624, min_wmark=5186, online_cpus=6) == 125
    # (1327 - 545) / 64 = 12.2 -> 12
    assert calculate_pressure_threshold(low_wmark=1327, min_wmark=545, online_cpus=64) == 12
    # (6 - 2) / 6 = 0 -> at least 1
    assert calculate_pressure_threshold(low_wmark=6, min_wmark=2, online_cpus=6) == 1


# --- layout ---------------------------------------------------------------------------------


def test_layout_single_node_32g():
    (node,) = x86_64_zone_layout([32 * GiB], 3 * GiB, 128 * MiB)
    dma, dma32, normal, movable = node
    # DMA: pfns [1, 4096)
    assert (dma.start_pfn, dma.spanned_pages, dma.present_pages) == (1, 4095, 4095)
    # DMA32: [4096, 3 GiB >> 12 = 786432) = 782336 pages
    assert (dma32.start_pfn, dma32.present_pages) == (4096, 782336)
    # Normal: from 4 GiB (pfn 1048576), the other 29 GiB = 7602176 pages
    assert (normal.start_pfn, normal.present_pages, normal.end_pfn) == (1048576, 7602176, 8650752)
    assert (movable.start_pfn, movable.spanned_pages, movable.populated) == (0, 0, False)
    # node present = 4095 + 782336 + 7602176 = 8388607; memmap = ceil(8388607 * 64 / 4096)
    # = ceil(131071.98) = 131072 pages; reserved = 128 MiB / 4 KiB = 32768 pages;
    # both from Normal: 7602176 - 131072 - 32768 = 7438336
    assert [z.managed_pages for z in node] == NODE0_32G
    assert [z.name for z in node] == ["DMA", "DMA32", "Normal", "Movable"]


def test_layout_two_nodes():
    node0, node1 = x86_64_zone_layout([32 * GiB, 32 * GiB], 3 * GiB, 128 * MiB)
    assert [z.managed_pages for z in node0] == NODE0_32G
    assert [z.present_pages for z in node1] == [0, 0, 8388608, 0]
    # node 1 starts where node 0 ended: pfn (4 GiB + 29 GiB) >> 12 = 8650752
    assert node1[ZONE_NORMAL].start_pfn == 8650752
    # memmap 8388608 / 64 = 131072 pages, no `reserved` on node 1
    assert node1[ZONE_NORMAL].managed_pages == 8388608 - 131072
    assert all(z.node == 1 for z in node1)


def test_layout_node0_below_4g_only():
    node0, node1 = x86_64_zone_layout([2 * GiB, 1 * GiB], 3 * GiB, 0)
    # node 0 fits below 4 GiB: DMA32 = [4096, 524288), no Normal
    assert [z.present_pages for z in node0] == [4095, 520192, 0, 0]
    # node 1 starts above the PCI hole, at 4 GiB
    assert node1[ZONE_NORMAL].start_pfn == 1 << 20
    # node 0 memmap: ceil((4095 + 520192) / 64) = ceil(8191.98) = 8192 pages, out of DMA32
    assert node0[ZONE_DMA32].managed_pages == 520192 - 8192


def test_layout_deduction_spills_downward():
    (node,) = x86_64_zone_layout([20 * MiB], 3 * GiB, 8 * MiB)
    # DMA [1, 4096) = 4095, DMA32 [4096, 5120) = 1024; memmap ceil(5119 / 64) = 80,
    # reserved 2048: 2128 pages, 1024 from DMA32, the other 1104 from DMA
    assert [z.present_pages for z in node] == [4095, 1024, 0, 0]
    assert [z.managed_pages for z in node] == [2991, 0, 0, 0]


@given(
    st.lists(st.integers(min_value=1, max_value=1 << 42), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=4 * GiB),
)
def test_layout_properties(memory, below_4g):
    layout = x86_64_zone_layout(memory, below_4g, 0)
    assert len(layout) == len(memory)
    prev_end = 0
    for nid, node in enumerate(layout):
        present = sum(z.present_pages for z in node)
        # pfn 0 is the BIOS's, so node 0 lacks one page when it has any memory below 4 GiB
        lost = 1 if nid == 0 and min(below_4g, memory[0]) >= PAGE else 0
        if nid == 0:
            expected = (min(below_4g, memory[0]) >> 12) - lost
            expected += (memory[0] - min(below_4g, memory[0])) >> 12
        else:
            expected = memory[nid] >> 12
        assert present == expected
        assert all(0 <= z.managed_pages <= z.present_pages for z in node)
        memmap = -(-present * 64 // PAGE)
        assert present - sum(z.managed_pages for z in node) == min(present, memmap)
        spans = [z for z in node if z.populated]
        for z in spans:
            assert z.start_pfn >= prev_end or nid == 0
        if spans:
            prev_end = max(z.end_pfn for z in spans)


# --- the real hardware file -----------------------------------------------------------------


def _hardware_with(**memory) -> Hardware:
    doc = read_yaml_mapping(BROADWELL)
    doc["memory"] = {**doc["memory"], **{k: v for k, v in memory.items() if k != "node0"}}
    if "node0" in memory:
        doc["topology"]["nodes"][0]["memory"] = memory["node0"]
    return Hardware.model_validate(doc)


def test_broadwell_boot_zone_numbers():
    hw = load_hardware(BROADWELL)
    zones = boot_zone_numbers(hw)
    assert [z.name for z in zones] == ["DMA", "DMA32", "Normal"]
    dma, dma32, normal = zones
    assert (dma.pcp_high, dma.pcp_batch) == (0, 1)
    assert (dma32.pcp_high, dma32.pcp_batch) == (378, 63)
    assert (normal.pcp_high, normal.pcp_batch) == (378, 63)
    assert [z.managed_pages for z in zones] == NODE0_32G[:3]
    assert normal.watermarks == (5186, 12624, 20062)
    assert dma.lowmem_reserve == (0, 3056, 32112, 32112)
    assert [z.stat_threshold for z in zones] == [6, 36, 54]  # 6 CPUs
    assert [z.pressure_threshold for z in zones] == [1, 125, 125]

    nums = boot_numbers(hw)
    assert nums.lowmem_kbytes == (M_DMA + M_DMA32 + M_NORMAL) * 4 == 32899068
    assert nums.min_free_kbytes == 22943
    assert nums.online_cpus == 6
    assert nums.zone(0, ZONE_NORMAL) == normal
    with pytest.raises(KeyError):
        nums.zone(0, ZONE_MOVABLE)
    assert check_node_memory(hw) == []


def test_broadwell_with_khugepaged():
    # THP enabled: min_free_kbytes 67584 (3 lowmem zones), pages_min = 16896;
    # Normal min = 16896 * 7438336 / 8224767 = 15280.4 -> 15280; tmp = max(3820, 7438) = 7438
    nums = boot_numbers(load_hardware(BROADWELL), thp=True)
    assert nums.min_free_kbytes == 67584
    assert nums.zone(0, ZONE_NORMAL).watermarks == (15280, 22718, 30156)


def test_check_node_memory_flags_a_node_without_room():
    # 20 MiB with 8 MiB reserved: DMA32 is populated but keeps 0 managed pages (see
    # test_layout_deduction_spills_downward), so it cannot hold even its high watermark.
    hw = _hardware_with(node0="20 MiB", reserved="8 MiB")
    messages = check_node_memory(hw)
    assert len(messages) == 1
    assert messages[0].startswith("node 0: zone DMA32 has 0 managed pages")
