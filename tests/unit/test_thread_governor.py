"""The thread governor (model/speed.py): reads /proc/stat's tick counters and gives up one thread per core that other
processes keep busy, never below one, never above what was asked for; the default thread count heeds a cgroup's CPU
quota (utils/cpu.py)."""
import pytest
import torch

from model import speed
from utils import cpu, errors, machine


@pytest.fixture
def threads():
    """Restore torch's thread count and the speed settings after the test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    speed.configure(kernel="auto", precision="fp32", thread_policy="adaptive")


def test_ticks_read_the_named_cpus(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 1 50 900 9 0 2 3 0 0\ncpu0 10 0 5 90 1 0 1 1 0 0\ncpu1 20 0 6 80 2 0 1 0 0 0\n"
                    "cpu2 1 1 1 1 1 1 1 1 0 0\nintr 5 6\n")
    assert speed._ticks(str(stat), slice(0, 8), {"cpu0", "cpu1"}) == 108 + 109
    assert speed._ticks(str(stat), slice(3, 5), {"cpu1"}) == 82
    assert speed._ticks(str(tmp_path / "absent"), slice(0, 1), {"cpu0"}) is None


@pytest.mark.skipif(not speed.Path("/proc/stat").exists(), reason="no /proc/stat (not Linux): the governor stays off")
def test_this_process_work_counts_as_its_own(threads):
    """A third of a second of this process's own work shows in its own time and, in the same unit, in its CPUs'
    busy time, so it is not taken for another process's (under QEMU, /proc/self/stat gave no own time)."""
    governor = speed.ThreadGovernor()
    start, deadline = governor._sample(), speed.time.monotonic() + 10
    while speed.time.process_time() - start[2] < 0.3 and speed.time.monotonic() < deadline:
        pass
    end = governor._sample()
    wall, busy, ours = (e - s for e, s in zip(end, start, strict=True))
    assert ours >= 0.3 and ours - 0.05 <= busy <= wall * len(governor.cpus) + 0.05


@pytest.mark.parametrize("cpus, ceiling, others, expected", [
    (2, 2, 0.0, 2), (2, 2, 0.25, 2), (2, 2, 0.35, 1), (2, 2, 1.0, 1), (2, 2, 3.0, 1),
    (16, 8, 4.0, 8), (16, 8, 10.0, 6), (16, 16, 15.9, 1), (1, 1, 0.0, 1),
])
def test_one_thread_less_per_core_others_keep_busy(cpus, ceiling, others, expected):
    governor = speed.ThreadGovernor()
    governor.cpus, governor.ceiling = {f"cpu{i}" for i in range(cpus)}, ceiling
    assert governor.threads_for(others) == expected


def test_tick_follows_the_load_and_respects_a_new_ceiling(threads, monkeypatch):
    torch.set_num_threads(2)
    governor = speed.ThreadGovernor(interval=0.0)
    governor.cpus = {"cpu0", "cpu1"}
    samples = iter([(0.0, 0.0, 0.0), (1.0, 2.0, 1.0), (2.0, 3.0, 2.0), (3.0, 4.0, 3.0)])  # (time, busy, ours)
    monkeypatch.setattr(governor, "_sample", lambda: next(samples))
    governor.tick()  # first look: a baseline only
    assert torch.get_num_threads() == 2 and governor.ceiling == 2
    governor.tick()  # others used 2 - 1 = 1 core of 2
    assert governor.others == pytest.approx(1.0) and torch.get_num_threads() == 1
    governor.tick()  # only this process was busy
    assert governor.others == 0 and torch.get_num_threads() == 2
    torch.set_num_threads(1)  # someone (--threads 1) asks for one thread: the new ceiling
    governor.tick()
    assert governor.ceiling == 1 and torch.get_num_threads() == 1


def test_fixed_threads_restore_the_count_asked_for(threads, monkeypatch):
    torch.set_num_threads(2)
    ticks = []
    monkeypatch.setattr(speed.governor, "tick", lambda: ticks.append(1))
    with speed.autocast("cpu"):
        pass
    assert ticks == [1]  # adaptive (the default): every forward on the CPU lets the governor look
    with speed.autocast("meta"):
        pass
    assert ticks == [1]
    monkeypatch.setattr(speed.governor, "ceiling", 2)
    monkeypatch.setattr(speed.governor, "set_to", 1)
    monkeypatch.setattr(speed.governor, "others", 1.0)  # the last look: one core busy elsewhere
    torch.set_num_threads(1)
    speed.configure(thread_policy="fixed")
    assert torch.get_num_threads() == 2
    with speed.autocast("cpu"):
        pass
    assert ticks == [1]
    speed.configure(thread_policy="adaptive")  # back at once to what the last look gave
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="thread policy must be one of adaptive, fixed, not 'some'"):
        speed.configure(thread_policy="some")


@pytest.mark.parametrize("policy", ["fixed", "adaptive"])
def test_a_script_start_forgets_a_stale_ceiling(threads, policy, monkeypatch):
    """In one process (tests, notebooks) the governor may have cut 2 threads to 1; a script then asking for
    --threads 1 must get 1, not the old ceiling 2 (restored by fixed, or regained by adaptive when load drops)."""
    monkeypatch.setattr(speed.governor, "ceiling", 2)
    monkeypatch.setattr(speed.governor, "set_to", 1)
    monkeypatch.setattr(speed.governor, "others", 0.0)
    torch.set_num_threads(1)
    speed.configure_for(torch.device("cpu"), "auto", "fp32", policy)
    assert torch.get_num_threads() == 1
    monkeypatch.setattr(speed, "_ticks", lambda *args: 0)  # an idle machine from now on
    for _ in range(2):
        speed.governor.tick()
        monkeypatch.setattr(speed.governor, "last", (speed.governor.last[0] - 2, 0, 0))
    assert torch.get_num_threads() == 1


def write_files(root, files: dict) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.parametrize(("files", "expected"), [
    ({"proc/self/cgroup": "0::/\n"}, None),  # v2, no cpu.max: no quota
    ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"}, None),
    ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "150000 100000\n"}, 1.5),  # docker --cpus 1.5
    ({"proc/self/cgroup": "0::/kubepods/pod1/box\n", "sys/fs/cgroup/kubepods/pod1/cpu.max": "200000 100000\n",
      "sys/fs/cgroup/kubepods/pod1/box/cpu.max": "max 100000\n"}, 2.0),  # the parent's limit holds
    ({"proc/self/cgroup": "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n",  # v1; in the container, its cgroup is root
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "300000\n",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 3.0),
    ({"proc/self/cgroup": "1:cpu:/\n", "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
      "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1 without a quota
    ({}, None),  # no /proc (macOS)
])
def test_cgroup_cpu_quota_is_read_from_v1_and_v2(files, expected, tmp_path):
    write_files(tmp_path, files)
    assert cpu.cpu_quota(tmp_path) == expected


@pytest.mark.parametrize(("quota", "expected"), [(None, 2), (0.5, 1), (1.5, 1), (8.0, 2)])
def test_a_cpu_quota_caps_the_default_threads(quota, expected, monkeypatch):
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(cpu, "cpu_quota", lambda: quota)
    assert cpu.usable_cores() == expected
    threads = torch.get_num_threads()
    try:
        assert machine.configure_threads() == expected
        with pytest.raises(errors.InputError, match=f"--threads {4 * expected + 1}: this process may use {expected}"):
            machine.configure_threads(4 * expected + 1)  # 4 a core is warned about; more is refused
    finally:
        torch.set_num_threads(threads)


def test_environment_defaults_that_are_no_choice_are_ignored_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("RIN_THREAD_POLICY", "4")
    monkeypatch.setenv("RIN_PAIR_KERNEL", "torch")
    assert speed._from_environment() == speed.Speed(kernel="torch", thread_policy="adaptive")
    assert caplog.messages == ["$RIN_THREAD_POLICY='4' is none of adaptive, fixed: ignored (the default, adaptive, "
                               "applies)"]
    caplog.clear()
    monkeypatch.setenv("RIN_THREAD_POLICY", "fixed")
    monkeypatch.setenv("RIN_THREADS", "fixed")  # the variable's name before 2026-12-07
    monkeypatch.setenv("RIN_PAIR_KERNEL", "")  # set empty: unset, as a shell user means it
    assert speed._from_environment() == speed.Speed(kernel="auto", thread_policy="fixed")
    assert caplog.messages == ["$RIN_THREADS is ignored: the thread policy's variable is $RIN_THREAD_POLICY "
                               "(adaptive or fixed); a thread count is --threads"]


def test_a_kernel_that_cannot_run_names_where_it_was_chosen(monkeypatch):
    """--pair_kernel fused on a device the kernels do not take is refused naming the flag, and the variable
    where that says the same (the user may never have typed --pair_kernel)."""
    monkeypatch.delenv("RIN_PAIR_KERNEL", raising=False)
    with pytest.raises(errors.InputError, match=r"^--pair_kernel fused: the fused pair kernels take float32 CPU"):
        speed.configure_for(torch.device("meta"), "fused", "fp32", "fixed")
    monkeypatch.setenv("RIN_PAIR_KERNEL", "fused")
    monkeypatch.setattr(speed, "DEFAULTS", speed._from_environment())
    with pytest.raises(errors.InputError, match=r"^--pair_kernel fused \(\$RIN_PAIR_KERNEL=fused here\): the"):
        speed.configure_for(torch.device("meta"), speed.DEFAULTS.kernel, "fp32", "fixed")


def test_a_script_run_in_process_leaves_the_next_ones_defaults_alone(threads):
    """One process may run several scripts' main() (a notebook, reproduce.py's steps): what one configured is not
    the next one's default, for evaluate.py's and predict.py's flags as for train.py's settings."""
    import argparse

    from experiments.settings import parse_args, resolve_settings

    speed.configure(kernel="torch", precision="bf16", thread_policy="fixed")
    parser = argparse.ArgumentParser()
    speed.add_arguments(parser)
    flags = parser.parse_args([])
    defaults = (speed.DEFAULTS.kernel, speed.DEFAULTS.precision, speed.DEFAULTS.thread_policy)
    assert (flags.pair_kernel, flags.precision, flags.thread_policy) == defaults
    settings = resolve_settings(parse_args(["--dataset", "webnlg"]))
    assert (settings["pair_kernel"], settings["precision"], settings["thread_policy"]) == defaults
