#!/usr/bin/python3
"""A FUSE filesystem that loses, on command, everything a power cut would lose.

Used by auditlog/tests/power_loss.rs. Usage: lossyfs.py MOUNTPOINT WORKDIR [--fsync-delay-ms N]

The mount is a passthrough to WORKDIR/live, so processes see an ordinary filesystem (with the
page cache semantics: what was written is read back). Next to it, the filesystem keeps the
*durable* state, what a disk would hold after a power cut:

- File data is durable only once fsync or fdatasync ran on that file: every write marks its
  byte range dirty, and a file's fsync copies its dirty ranges (and its size) into
  WORKDIR/durable/<id>. Stricter than ext4 data=ordered, which also writes out the data of a
  file whose new blocks a journal commit allocates: here nothing but the file's own fsync
  makes its data durable.
- Names (create, mkdir, rename, unlink, link, symlink) are journaled as on ext4: in order, and
  all of them at the next fsync or fdatasync of any file or directory, since ext4 has one
  journal and every fsync commits it. (A name is never durable before it was created; a
  rename is atomic.) Files are identified by an id given at creation, not by the inode
  number, which the backing filesystem may reuse after an unlink.

Control, one command per stdin line, one JSON answer per stdout line:

- `crash SUFFIX WAIT_MS`: the power cut. It waits (at most WAIT_MS) until some file whose
  name ends with SUFFIX has unsynced bytes past its durable end, then freezes the filesystem
  at once (every later operation fails with EIO, so nothing can become durable afterwards)
  and writes the durable state as an ordinary directory tree to WORKDIR/crashed. Of each such
  SUFFIX file, the first unsynced write after its durable end is kept but its last byte (a
  write the disk took only in part, so the survivor ends in a torn record); every other
  unsynced byte is lost. Answers {"crashed": DIR, "torn": [{"path", "durable",
  "kept"}], "dropped_bytes": N}.

`--fsync-delay-ms` makes every fsync take that long before it copies (a slow disk), so that
writes sit unsynced for a while and a crash finds some.
"""

import errno
import json
import os
import shutil
import sys
import threading
import time

try:  # Debian's python3-fusepy names the module fusepy; PyPI's fusepy names it fuse.
    from fusepy import FUSE, FuseOSError, Operations
except ImportError:
    from fuse import FUSE, FuseOSError, Operations


class LossyFs(Operations):
    def __init__(self, workdir, fsync_delay):
        self.live = os.path.join(workdir, "live")
        self.durable = os.path.join(workdir, "durable")
        self.crashed = os.path.join(workdir, "crashed")
        for d in (self.live, self.durable):
            os.makedirs(d, exist_ok=True)
        self.fsync_delay = fsync_delay
        # One lock over all bookkeeping; the crash takes it and never gives it back.
        self.mutex = threading.Lock()
        self.frozen = False
        self.next_id = 0
        self.ids = {}  # live inode number -> file id
        self.dirty = {}  # file id -> [(start, end)] written since its last fsync
        self.durable_size = {}  # file id -> size of WORKDIR/durable/<id>
        self.names_dirty = True
        # Committed namespace: relative path -> (id, kind, mode, symlink target).
        self.names = {"": (self.id_of(self.live), "dir", 0o755, None)}

    # --- bookkeeping -------------------------------------------------------------------

    def path(self, path):
        return os.path.join(self.live, path.lstrip("/"))

    def check(self):
        if self.frozen:
            raise FuseOSError(errno.EIO)

    def id_of(self, live, fresh=False):
        """The id of a live path, or of an open file descriptor."""
        ino = (os.fstat(live) if isinstance(live, int) else os.lstat(live)).st_ino
        if fresh or ino not in self.ids:
            self.ids[ino] = self.next_id
            self.next_id += 1
        return self.ids[ino]

    def name_op(self, op, *paths, fresh=None):
        """Runs a namespace operation, then notes that the journal has something to commit."""
        with self.mutex:
            self.check()
            gone = None
            if op in (os.unlink, os.rmdir):
                st = os.lstat(paths[0])
                gone = st.st_ino if st.st_nlink <= 1 or op is os.rmdir else None
            result = op(*paths)
            if gone is not None:
                self.ids.pop(gone, None)  # the inode number may be reused: a new file, new id
            if fresh is not None:
                self.id_of(fresh, fresh=True)
            self.names_dirty = True
            return result

    def commit_names(self):
        """The journal commit: the namespace as it is now becomes the durable one."""
        if not self.names_dirty:
            return
        names = {}
        for root, dirs, files in os.walk(self.live):
            rel = os.path.relpath(root, self.live)
            rel = "" if rel == "." else rel
            for name in dirs + files:
                full = os.path.join(root, name)
                st = os.lstat(full)
                kind = "dir" if os.path.isdir(full) and not os.path.islink(full) else "link" if os.path.islink(full) else "file"
                target = os.readlink(full) if kind == "link" else None
                names[os.path.join(rel, name)] = (self.id_of(full), kind, st.st_mode & 0o7777, target)
        names[""] = self.names[""]
        self.names = names
        self.names_dirty = False

    def sync_data(self, fh):
        """Copies the file's dirty ranges and size into its durable copy."""
        fid = self.id_of(fh)
        ranges = self.dirty.pop(fid, [])
        size = os.fstat(fh).st_size
        if not ranges and self.durable_size.get(fid) == size:
            return
        src = os.open(f"/proc/self/fd/{fh}", os.O_RDONLY)
        dst = os.open(os.path.join(self.durable, str(fid)), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.ftruncate(dst, size)
            for start, end in ranges:
                end = min(end, size)
                while start < end:
                    chunk = os.pread(src, min(end - start, 1 << 20), start)
                    if not chunk:
                        break
                    os.pwrite(dst, chunk, start)
                    start += len(chunk)
        finally:
            os.close(src)
            os.close(dst)
        self.durable_size[fid] = size

    def mark(self, fh, start, end):
        fid = self.id_of(fh)
        self.dirty.setdefault(fid, []).append((start, end))

    # --- the power cut -----------------------------------------------------------------

    def crash(self, suffix, wait_ms):
        deadline = time.monotonic() + wait_ms / 1000
        while True:
            self.mutex.acquire()
            torn = self.torn_candidates(suffix)
            if torn or time.monotonic() >= deadline:
                break
            self.mutex.release()
            time.sleep(0.001)
        # Frozen: every operation that changes state checks this under the mutex and fails
        # with EIO, so the durable state below is final. (Failing rather than blocking lets
        # the killed process exit: a task waiting on a FUSE request cannot die.)
        self.frozen = True
        self.mutex.release()
        dropped = sum(end - start for ranges in self.dirty.values() for start, end in ranges)
        shutil.rmtree(self.crashed, ignore_errors=True)
        os.makedirs(self.crashed)
        kept = {}
        for path, fid, write_end in torn:
            base = self.durable_size.get(fid, 0)
            keep = write_end - 1 - base  # all but the last byte of the write in flight
            with open(os.path.join(self.live, path), "rb") as f:
                f.seek(base)
                kept[fid] = f.read(keep)
        for rel, (fid, kind, mode, target) in sorted(self.names.items()):
            out = os.path.join(self.crashed, rel)
            if kind == "dir":
                os.makedirs(out, exist_ok=True)
                os.chmod(out, mode)
            elif kind == "link":
                os.symlink(target, out)
            else:
                src = os.path.join(self.durable, str(fid))
                if os.path.exists(src):
                    shutil.copyfile(src, out)
                else:
                    open(out, "wb").close()  # created, data never synced
                if fid in kept:
                    with open(out, "ab") as f:
                        f.write(kept[fid])
                os.chmod(out, mode)
        report = [{"path": p, "durable": self.durable_size.get(fid, 0), "kept": len(kept[fid])} for p, fid, _ in torn]
        return {"crashed": self.crashed, "torn": report, "dropped_bytes": dropped}

    def torn_candidates(self, suffix):
        """Committed files ending in `suffix` with an unsynced write right after their durable end."""
        out = []
        for rel, (fid, kind, _, _) in self.names.items():
            if kind != "file" or not rel.endswith(suffix) or not self.dirty.get(fid):
                continue
            live = os.path.join(self.live, rel)
            if not os.path.exists(live) or self.id_of(live) != fid:
                continue
            # The write in flight at the cut: the first one that continues the durable end.
            durable = self.durable_size.get(fid, 0)
            ends = [end for start, end in self.dirty[fid] if start <= durable < end]
            if ends and ends[0] - 1 > durable:
                out.append((rel, fid, ends[0]))
        return out

    # --- passthrough operations --------------------------------------------------------

    def init(self, path):
        print(json.dumps({"mounted": True}), flush=True)

    def getattr(self, path, fh=None):
        self.check()
        st = os.lstat(self.path(path))
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid", "st_blocks")
        return {k: getattr(st, k) for k in keys}

    def access(self, path, mode):
        self.check()
        if not os.access(self.path(path), mode):
            raise FuseOSError(errno.EACCES)

    def readdir(self, path, fh):
        self.check()
        return [".", ".."] + os.listdir(self.path(path))

    def readlink(self, path):
        self.check()
        return os.readlink(self.path(path))

    def statfs(self, path):
        st = os.statvfs(self.path(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def chmod(self, path, mode):
        return self.name_op(os.chmod, self.path(path), mode)

    def chown(self, path, uid, gid):
        return self.name_op(os.chown, self.path(path), uid, gid)

    def utimens(self, path, times=None):
        self.check()
        os.utime(self.path(path), times)

    def mkdir(self, path, mode):
        return self.name_op(os.mkdir, self.path(path), mode, fresh=self.path(path))

    def rmdir(self, path):
        return self.name_op(os.rmdir, self.path(path))

    def unlink(self, path):
        return self.name_op(os.unlink, self.path(path))

    def rename(self, old, new):
        return self.name_op(os.replace, self.path(old), self.path(new))

    def link(self, target, source):
        return self.name_op(os.link, self.path(source), self.path(target))

    def symlink(self, target, source):
        return self.name_op(os.symlink, source, self.path(target), fresh=self.path(target))

    def open(self, path, flags):
        self.check()
        # The kernel hands O_APPEND writes their real offset; the backing file must not move them.
        return os.open(self.path(path), flags & ~os.O_APPEND)

    def create(self, path, mode, fi=None):
        full = self.path(path)
        with self.mutex:
            self.check()
            fh = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            self.id_of(full, fresh=True)
            self.names_dirty = True
            return fh

    def read(self, path, size, offset, fh):
        self.check()
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        with self.mutex:
            self.check()
            n = os.pwrite(fh, data, offset)
            self.mark(fh, offset, offset + n)
            return n

    def truncate(self, path, length, fh=None):
        with self.mutex:
            self.check()
            if fh is None:
                fd = os.open(self.path(path), os.O_WRONLY)
            else:
                fd = fh
            try:
                old = os.fstat(fd).st_size
                os.ftruncate(fd, length)
                self.mark(fd, min(old, length), max(old, length))
            finally:
                if fh is None:
                    os.close(fd)

    def flush(self, path, fh):
        self.check()

    def release(self, path, fh):
        os.close(fh)

    def fsync(self, path, datasync, fh):
        if self.fsync_delay:
            time.sleep(self.fsync_delay)
        with self.mutex:
            self.check()
            self.commit_names()
            self.sync_data(fh)

    def fsyncdir(self, path, datasync, fh):
        if self.fsync_delay:
            time.sleep(self.fsync_delay)
        with self.mutex:
            self.check()
            self.commit_names()


def control(fs):
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["crash"]:
            answer = fs.crash(words[1], int(words[2]))
        else:
            answer = {"error": f"unknown command {line.strip()!r}"}
        print(json.dumps(answer), flush=True)


def main():
    mountpoint, workdir = sys.argv[1], sys.argv[2]
    delay = int(sys.argv[sys.argv.index("--fsync-delay-ms") + 1]) / 1000 if "--fsync-delay-ms" in sys.argv else 0
    fs = LossyFs(workdir, delay)
    threading.Thread(target=control, args=(fs,), daemon=True).start()
    FUSE(fs, mountpoint, foreground=True, nothreads=False, big_writes=True, max_write=131072)


if __name__ == "__main__":
    main()
