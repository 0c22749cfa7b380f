"""The scheduling policy's decisions, without timing: capability, priority, fair share,
affinity (and its starvation guard), VRAM and owner caps."""

from atelier.dispatch.policy import Candidate, Policy, Slot, assign, fair_order

IMG = frozenset({"EmptyImage", "SaveImage"})
SD = frozenset({"CheckpointLoaderSimple", "KSampler", "SaveImage"})
GB = 1024**3


def test_jobs_go_to_backends_that_have_their_nodes() -> None:
    slots = [Slot("cpu", 1, IMG), Slot("gpu", 1, IMG | SD)]
    pairs = assign([Candidate("sd", SD), Candidate("img", IMG)], slots)
    assert pairs == [("sd", "gpu"), ("img", "cpu")]


def test_order_is_kept_and_free_slots_are_not_overfilled() -> None:
    slots = [Slot("a", 1, None), Slot("b", 2, None)]
    pairs = assign([Candidate(str(i), IMG) for i in range(5)], slots)
    assert [job for job, _ in pairs] == ["0", "1", "2"]
    assert sorted(backend for _, backend in pairs) == ["a", "b", "b"]


def test_a_job_nobody_can_run_does_not_block_the_next() -> None:
    pairs = assign(
        [Candidate("odd", frozenset({"Exotic"})), Candidate("img", IMG)], [Slot("a", 1, IMG)]
    )
    assert pairs == [("img", "a")]


def test_unknown_capabilities_accept_anything() -> None:
    assert assign([Candidate("x", frozenset({"Exotic"}))], [Slot("a", 1, None)]) == [("x", "a")]


def test_priority_beats_fair_share() -> None:
    jobs = [
        Candidate("a1", IMG, 0, "a"),
        Candidate("b-urgent", IMG, 5, "b"),
        Candidate("a2", IMG, 0, "a"),
    ]
    assert [c.job_id for c in fair_order(jobs, Policy())] == ["b-urgent", "a1", "a2"]


def test_fair_share_interleaves_owners() -> None:
    flood = [Candidate(f"a{i}", IMG, owner="a") for i in range(5)]
    late = [Candidate("b0", IMG, owner="b"), Candidate("b1", IMG, owner="b")]
    order = [c.job_id for c in fair_order(flood + late, Policy())]
    assert order[:4] == ["a0", "b0", "a1", "b1"]
    unfair = [c.job_id for c in fair_order(flood + late, Policy(fair_share=False))]
    assert unfair.index("b0") == 5


def test_fair_share_counts_jobs_already_in_flight() -> None:
    jobs = [Candidate("a0", IMG, owner="a"), Candidate("b0", IMG, owner="b")]
    order = fair_order(jobs, Policy(in_flight={"a": 3}))
    assert [c.job_id for c in order] == ["b0", "a0"]


def test_owner_cap_holds_an_owner_back() -> None:
    jobs = [Candidate(f"a{i}", IMG, owner="a") for i in range(3)] + [
        Candidate("b0", IMG, owner="b")
    ]
    pairs = assign(jobs, [Slot("x", 4, None)], Policy(owner_cap=2, in_flight={"a": 1}))
    assert [job for job, _ in pairs] == ["b0", "a0"]


def test_affinity_sends_jobs_to_the_warm_backend() -> None:
    slots = [Slot("one", 1, None, checkpoint="A"), Slot("two", 1, None, checkpoint="B")]
    jobs = [Candidate("b-job", SD, checkpoint="B"), Candidate("a-job", SD, checkpoint="A")]
    assert sorted(assign(jobs, slots)) == [("a-job", "one"), ("b-job", "two")]
    no_affinity = assign(jobs, slots, Policy(affinity=False))
    assert no_affinity[0] == ("b-job", "one")


def test_affinity_leaves_a_warm_slot_for_the_job_that_wants_it() -> None:
    slots = [Slot("one", 1, None, checkpoint="A")]
    jobs = [Candidate("b-job", SD, checkpoint="B"), Candidate("a-job", SD, checkpoint="A")]
    assert assign(jobs, slots) == [("a-job", "one")]


def test_affinity_never_starves_a_job() -> None:
    slots = [Slot("one", 1, None, checkpoint="A")]
    jobs = [
        Candidate("b-job", SD, checkpoint="B", waited=31.0),
        Candidate("a-job", SD, checkpoint="A"),
    ]
    assert assign(jobs, slots, Policy(affinity_max_wait=30.0)) == [("b-job", "one")]
    # And a job nobody else wants a slot for takes a cold one at once.
    assert assign([Candidate("b-job", SD, checkpoint="B")], slots) == [("b-job", "one")]


def test_vram_requirement() -> None:
    slots = [
        Slot("small", 1, None, vram_total=8 * GB),
        Slot("big", 1, None, vram_total=24 * GB),
        Slot("unknown", 1, None),
    ]
    assert assign([Candidate("x", SD, vram=16 * GB)], slots) == [("x", "big")]
    assert assign([Candidate("y", SD, vram=40 * GB)], slots) == []


def test_an_idle_backend_beats_a_busy_warm_one() -> None:
    slots = [
        Slot("busy", 1, None, checkpoint="A", idle=False),
        Slot("cold", 2, None, checkpoint=None),
    ]
    assert assign([Candidate("x", SD, checkpoint="A")], slots) == [("x", "cold")]
    # Once both are busy, the warm one wins.
    slots = [
        Slot("busy", 1, None, checkpoint="A", idle=False),
        Slot("other", 1, None, checkpoint="B", idle=False),
    ]
    assert assign([Candidate("x", SD, checkpoint="A")], slots) == [("x", "busy")]


def test_two_jobs_in_one_round_use_both_idle_backends() -> None:
    slots = [Slot("one", 2, None), Slot("two", 2, None)]
    jobs = [Candidate("a1", SD, checkpoint="A"), Candidate("a2", SD, checkpoint="A")]
    assert sorted(b for _, b in assign(jobs, slots)) == ["one", "two"]


def test_round_robin_rotates_regardless_of_affinity() -> None:
    slots = [Slot("a", 2, None, checkpoint="A"), Slot("b", 2, None, checkpoint="B")]
    jobs = [Candidate(str(i), SD, checkpoint="A") for i in range(3)]
    pairs = assign(jobs, slots, Policy(round_robin=True, last_backend="a"))
    assert [b for _, b in pairs] == ["b", "a", "b"]
