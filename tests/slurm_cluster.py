"""A throwaway one-node Slurm cluster on localhost, for tests that submit real jobs.

    cluster = SlurmCluster().start()      # raises SlurmUnavailable, with the reason, if it cannot
    subprocess.run(["sbatch", ...], env=cluster.environ())
    cluster.stop()

Everything lives in one temporary directory: a private munged (its own key and socket, so the system's
munge is neither needed nor touched), slurm.conf, the state and spool dirs, pid and log files. slurmctld
and slurmd run in the foreground as children of this process, are stopped by pid, and the directory is
removed. Needs root (SlurmUser=root) and the slurm-wlm and munge packages; no cgroups, no accounting
database (sacct has nothing to report), no DNS (the node and controller are 127.0.0.1).

    python tests/slurm_cluster.py         # start one by hand: prints SLURM_CONF, Ctrl-C stops it
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PARTITION = "debug"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "sinfo", "squeue", "scontrol", "scancel")
# `slurmd -C` fields copied into the node's line of slurm.conf (what slurmd will report when it registers).
HARDWARE = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")


class SlurmUnavailable(RuntimeError):
    """The cluster could not be started; the message says why (with the daemons' log tails)."""


def _which(name: str) -> str | None:
    """`name` on PATH, or in the sbin dirs a non-login PATH may lack."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"]))


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"({path.name}: none)"
    return f"--- {path.name} (last {min(lines, len(text))} lines)\n" + "\n".join(text[-lines:])


class SlurmCluster:
    """One node (this machine) in one partition, ``PARTITION``, on free ports."""

    partition = PARTITION

    def __init__(self, start_timeout: float = 60.0):
        self.start_timeout = start_timeout
        self.dir: Path | None = None
        self.conf: Path | None = None
        self.node: str | None = None
        self.socket: Path | None = None  # munged's
        self.hardware = ""  # the node's CPUs, cores, memory, as `slurmd -C` reports them
        self.procs: dict[str, subprocess.Popen] = {}
        self.bin: dict[str, str] = {}

    # ------------------------------------------------------------------ public
    def start(self) -> SlurmCluster:
        """Start munged, slurmctld and slurmd and wait until the node is idle; on failure clean up and
        raise SlurmUnavailable (also for an OS error such as a daemon that cannot be executed)."""
        try:
            self._check_host()
            self.dir = Path(tempfile.mkdtemp(prefix="slurm-"))
            self.dir.chmod(0o755)  # munged wants its socket's directories searchable by everyone
            self._start_munge()
            self._write_conf()
            self._spawn("slurmctld", [self.bin["slurmctld"], "-D", "-f", str(self.conf)])
            self._spawn("slurmd", [self.bin["slurmd"], "-D", "-f", str(self.conf), "-N", self.node])
            self._wait_idle()
        except (OSError, subprocess.SubprocessError) as err:
            message = f"{type(err).__name__}: {err}\n{self.logs()}"
            self.stop()
            raise SlurmUnavailable(message) from err
        except BaseException:
            self.stop()
            raise
        return self

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default os.environ) for a process that talks to this cluster: SLURM_CONF set, and the
        SLURM_/SBATCH_/SRUN_/SALLOC_ variables of any enclosing Slurm job dropped."""
        base = dict(os.environ if base is None else base)
        env = {k: v for k, v in base.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(self, *args: str, check: bool = True) -> str:
        """A Slurm client command (``"scontrol", "show", "job"``) against this cluster; its stdout."""
        out = subprocess.run([self.bin.get(args[0], args[0]), *args[1:]], env=self.environ(),
                             capture_output=True, text=True, timeout=30)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}")
        return out.stdout

    def logs(self, lines: int = 15) -> str:
        """The tails of the daemons' output, for a failure message (in the foreground, slurmctld and
        slurmd write their whole log, and the errors from before it opens, to this output too)."""
        if self.dir is None:
            return ""
        return "\n".join(_tail(self.dir / f"{name}.out", lines) for name in self.procs)

    def stop(self) -> None:
        """Cancel every job, stop the daemons (slurmd, slurmctld, munged) by pid, remove the directory."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self.run("scancel", "--user", str(os.getuid()), check=False)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and self.run("squeue", "-h", "-o", "%i", check=False).strip():
                    time.sleep(0.5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------- private
    def _check_host(self) -> None:
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            raise SlurmUnavailable("needs root (the daemons run with SlurmUser=root)")
        missing = [name for name in DAEMONS + CLIENTS if not _which(name)]
        if missing:
            raise SlurmUnavailable(f"{', '.join(missing)} not found (apt-get install slurm-wlm munge)")
        self.bin = {name: _which(name) for name in DAEMONS + CLIENTS}
        out = subprocess.run([self.bin["slurmd"], "-C"], capture_output=True, text=True, timeout=30)
        fields = dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)
        if out.returncode != 0 or "NodeName" not in fields or not all(k in fields for k in HARDWARE):
            raise SlurmUnavailable(f"slurmd -C did not describe this node: {(out.stdout + out.stderr).strip()}")
        self.node = fields["NodeName"]
        self.hardware = " ".join(f"{k}={fields[k]}" for k in HARDWARE)

    def _start_munge(self) -> None:
        mdir = self.dir / "munge"
        mdir.mkdir()
        mdir.chmod(0o755)
        key = mdir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.socket = mdir / "munge.socket"
        self._spawn("munged", [self.bin["munged"], "--foreground", f"--key-file={key}", f"--socket={self.socket}",
                               f"--pid-file={mdir / 'munged.pid'}", f"--seed-file={mdir / 'munged.seed'}"])
        self._wait(lambda: self.socket.exists(), "munged", timeout=15)

    def _write_conf(self) -> None:
        d = self.dir
        ctld_port, slurmd_port = _free_ports(2)
        for sub in ("state", "spool"):
            (d / sub).mkdir()
        (d / "plugstack.conf").write_text("")  # no site SPANK plugins
        self.conf = d / "slurm.conf"
        self.conf.write_text(f"""\
ClusterName=itdtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket}
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd.pid'}
SlurmctldLogFile={d / 'slurmctld.log'}
SlurmdLogFile={d / 'slurmd.log'}
PlugStackConfig={d / 'plugstack.conf'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
MailProg={shutil.which("true") or "/bin/true"}
KillWait=5
ReturnToService=2
NodeName={self.node} NodeAddr=127.0.0.1 {self.hardware} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with open(self.dir / f"{name}.out", "wb") as out:  # the child keeps its own descriptor
            self.procs[name] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                                env=self.environ() if self.conf else None, start_new_session=True)

    def _wait(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited with code {proc.returncode}\n{self.logs()}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise SlurmUnavailable(f"{what} not ready after {timeout:.0f} s\n{self.logs()}")
            time.sleep(0.5)

    def _wait_idle(self) -> None:
        def idle() -> bool:
            out = subprocess.run([self.bin["sinfo"], "-h", "-N", "-n", self.node, "-o", "%T"],
                                 env=self.environ(), capture_output=True, text=True, timeout=30)
            return out.returncode == 0 and out.stdout.strip() == "idle"

        self._wait(idle, f"node {self.node} (idle in sinfo)", timeout=self.start_timeout)


if __name__ == "__main__":
    with SlurmCluster() as cluster:
        print(f"export SLURM_CONF={cluster.conf}   # partition {cluster.partition}; Ctrl-C stops the cluster")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
