"""Reaching a cluster's login node over SSH (Fabric): the only module that imports ``fabric``/``paramiko``.

:class:`RemoteExecutor` runs argument lists on the login node (each word shell-quoted), and copies files both ways
over SFTP. Host keys are verified: the client loads the inventory's ``known_hosts`` file (or the user's
``~/.ssh/known_hosts``) and uses paramiko's ``RejectPolicy``, so an unknown or changed host key is an error, never
silently trusted (Fabric's own default is ``AutoAddPolicy``). Connecting is bounded by ``connect_timeout`` (also the
banner and authentication timeouts) and each command by ``command_timeout`` seconds.
"""

from __future__ import annotations

import shlex
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madengine.deploy.slurm.cli import COMMAND_TIMEOUT, CommandResult, SlurmError
from madengine.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from madengine.inventory import LoginHost


class RemoteExecutor:
    """Commands and files on a login node, through one Fabric ``Connection`` opened on first use.

    Args:
        login: the inventory's login entry (host or ssh alias, user, port, key, known_hosts, timeouts).

    Raises (from its methods):
        SlurmError: the connection cannot be made (host key rejected, unreachable, authentication failed), or a
            file transfer failed; the message names the host and the fix.
    """

    def __init__(self, login: LoginHost) -> None:
        self.login = login
        where = f"{login.user + '@' if login.user else ''}{login.host}{':' + str(login.port) if login.port else ''}"
        self.description = f"ssh {where}"
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is not None:
            return self._conn
        try:
            import paramiko
            from fabric import Config, Connection
        except ImportError:
            raise ConfigError("--cluster needs Fabric: pip install 'fabric>=3.2.3,<4' (or madengine[slurm])") from None
        login = self.login
        config = Config(overrides={"load_ssh_configs": True, "run": {"in_stream": False}})
        connect_kwargs: dict[str, Any] = {"banner_timeout": login.connect_timeout,
                                          "auth_timeout": login.connect_timeout}
        if login.key_filename:
            connect_kwargs["key_filename"] = str(Path(login.key_filename).expanduser())
        conn = Connection(login.host, user=login.user, port=login.port, config=config,
                          connect_timeout=int(login.connect_timeout), connect_kwargs=connect_kwargs)
        client = conn.client
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if login.known_hosts:
            path = Path(login.known_hosts).expanduser()
            if not path.is_file():
                raise ConfigError(f"inventory login.known_hosts: {path} does not exist; add the host's key there "
                                  "(ssh-keyscan) or fix the path")
            client.load_host_keys(str(path))
        else:
            client.load_system_host_keys()
        try:
            conn.open()
        except paramiko.SSHException as e:
            text = str(e)
            if "not found in known_hosts" in text or "Server" in text and "not found" in text:
                raise SlurmError(f"{self.description}: host key not known ({text}); add it to "
                                 f"{login.known_hosts or '~/.ssh/known_hosts'} after checking its fingerprint") \
                    from None
            raise SlurmError(f"{self.description}: SSH failed: {text}") from None
        except (OSError, EOFError) as e:
            raise SlurmError(f"{self.description}: cannot connect ({e}); check login.host/port and that sshd is "
                             "up") from None
        self._conn = conn
        return conn

    def run(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        """Run ``argv`` on the login node (words shell-quoted); rc 124 on timeout. See :class:`Executor`."""
        return self.run_shell(shlex.join(argv), timeout=min(timeout, self.login.command_timeout))

    def run_shell(self, command: str, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        """Run a shell command line as is (callers quote every value)."""
        from invoke.exceptions import CommandTimedOut

        conn = self._connection()
        try:
            result = conn.run(command, hide=True, warn=True, pty=False, timeout=timeout, in_stream=False)
        except CommandTimedOut:
            return CommandResult(124, "", f"{command[:80]} timed out after {timeout:.0f} s on {self.description}")
        return CommandResult(result.exited, result.stdout, result.stderr)

    def push(self, local: Path, remote: str, mode: int | None = None) -> None:
        """Copy the file or directory tree ``local`` to the path ``remote`` on the login node (directories made).
        Files keep their permission bits, or get ``mode`` (e.g. 0o600 for credentials)."""
        conn = self._connection()
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        dirs = {remote if local.is_dir() else str(Path(remote).parent)}
        for f in files:
            if local.is_dir():
                dirs.add(str(Path(remote) / f.relative_to(local).parent))
        result = self.run(["mkdir", "-p", *sorted(dirs)])
        if result.rc != 0:
            raise SlurmError(f"{self.description}: mkdir failed: {result.error_line}")
        try:
            sftp = conn.sftp()
            for f in files:
                target = remote if local.is_file() else str(Path(remote) / f.relative_to(local))
                with sftp.open(target, "wb") as out:  # made private before any byte is written
                    out.chmod(mode if mode is not None else 0o600)
                    out.write(f.read_bytes())
                sftp.chmod(target, mode if mode is not None else f.stat().st_mode & 0o777)
        except OSError as e:
            raise SlurmError(f"{self.description}: copying {local} to {remote} failed: {e}") from None

    def pull(self, remote: str, local: Path) -> None:
        """Copy the directory tree ``remote`` from the login node into ``local`` (missing remote dir: no-op)."""
        conn = self._connection()
        try:
            sftp = conn.sftp()
            try:
                sftp.stat(remote)
            except FileNotFoundError:
                return
            stack = [(remote, local)]
            while stack:
                rdir, ldir = stack.pop()
                ldir.mkdir(parents=True, exist_ok=True)
                for entry in sftp.listdir_attr(rdir):
                    rpath = f"{rdir}/{entry.filename}"
                    if stat.S_ISDIR(entry.st_mode or 0):
                        stack.append((rpath, ldir / entry.filename))
                    elif stat.S_ISREG(entry.st_mode or 0):
                        sftp.get(rpath, str(ldir / entry.filename))
                    elif stat.S_ISLNK(entry.st_mode or 0):  # the latest-run log pointers: kept as links
                        link = ldir / entry.filename
                        link.unlink(missing_ok=True)
                        link.symlink_to(sftp.readlink(rpath))
        except OSError as e:
            raise SlurmError(f"{self.description}: fetching {remote} failed: {e}") from None

    def read_text(self, remote: str) -> str | None:
        """The text of a remote file, or ``None`` when it does not exist."""
        conn = self._connection()
        try:
            with conn.sftp().open(remote, "r") as f:
                return bytes(f.read()).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise SlurmError(f"{self.description}: reading {remote} failed: {e}") from None

    def close(self) -> None:
        """Close the SSH connection (if one was opened)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
