"""Uniform replay of n-step transitions between pixel observations, each frame stored once.

Two rings. The frame ring holds frames (``(H, W)`` planes of a frame stack,
or whole observations: :mod:`~mpirl.replay.frames.layout`) numbered by an
ever-growing serial (slot = serial mod ``frame_capacity``). The transition
ring holds per transition the 2k frame slots of ``obs`` and ``next_obs``,
action, reward, discount, and a ``key``: a lower bound of the frame serials
it uses. Sampling gathers the frames of a batch with one fancy index.

Data comes as a round's observation history of B streams (one sender's env
copies), ``history[R, B, ...]``, and transitions pointing into it. An
observation costs one new frame when its first k-1 planes are byte for byte
the previous one's last k-1; otherwise (an episode's first stack) its planes
are stored, a plane equal to the one before it once. The first ``overlap``
rows repeat the stream's previous history (the n-step actor's carried-over
steps) and reuse its frames after a byte comparison. Nothing is assumed, so
sampled observations are bitwise the inserted ones, across episode ends,
truncations, interleaved streams and restarts.

Eviction is FIFO: a transition goes when the ring wraps onto it or the frame
ring is about to overwrite a frame it uses. Keys never decrease from the
oldest transition to the newest (a batch lowers newer keys to its minimum),
so the live transitions are always one contiguous run of the ring.
"""
from __future__ import annotations

import numpy as np

from mpirl.replay.frames.layout import FrameLayout, default_stack
from mpirl.replay.frames.state import frame_state, load_frame_state
from mpirl.replay.uniform import _normalise_spec

_WALK = 1024  # transitions looked at per vectorised step of the key walks


class FrameReplay:
    """Fixed-capacity FIFO replay of transitions between ``(H, W, C)`` observations, frames deduplicated.

    ``spec`` is the DQN replay spec (``obs``, ``next_obs`` of the same
    ``(H, W, C)`` uint8/bool field, plus ``action``, ``reward``, ``discount``;
    :func:`mpirl.algos.dqn.messages.replay_spec`). ``stack``: frames per
    observation, C or 1 (default :func:`default_stack`). ``frame_capacity``
    (default ``capacity + capacity // 16 + 128 * stack``) frames fit; when
    observations share fewer frames than that allows (very short episodes,
    unstacked channels), fewer than ``capacity`` transitions stay.
    """

    def __init__(self, capacity: int, spec: dict, stack: int | None = None, frame_capacity: int | None = None):
        capacity = int(capacity)
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.spec = _normalise_spec(spec)
        if not {"obs", "next_obs"} <= set(self.spec) or self.spec["obs"] != self.spec["next_obs"]:
            raise ValueError("the frame replay needs 'obs' and 'next_obs' fields of one shape and dtype")
        obs_shape, dtype = self.spec["obs"]
        k = default_stack(obs_shape, dtype) if stack is None else int(stack)
        self.layout = FrameLayout(obs_shape, dtype, k)
        fcap = capacity + capacity // 16 + 128 * k if frame_capacity is None else int(frame_capacity)
        if fcap < 2 * k:
            raise ValueError(f"frame_capacity must be >= {2 * k}, got {fcap}")
        self._capacity, self._fcap = capacity, fcap
        self._frames = np.zeros((fcap,) + self.layout.frame_shape, dtype)
        self._refs = np.zeros((capacity, 2 * k), np.int32 if fcap < 2**31 else np.int64)
        self._key = np.zeros(capacity, np.int64)
        self._rows = {name: np.zeros((capacity,) + shape, dt) for name, (shape, dt) in self.spec.items()
                      if name not in ("obs", "next_obs")}
        self._head = self._tail = self._fhead = 0  # transitions ever inserted / evicted, frames ever written
        self._streams: dict = {}  # source -> serials [overlap, B, k] (-1: none) and bytes of its last rows
        self.dropped = np.zeros(0, np.int64)  # rows the last add evicted for frames (see _insert)
        self._evicted = (0, 0)  # transition counts [start, end) the last add evicted for frames

    # -- sizes ---------------------------------------------------------------
    def __len__(self) -> int:
        return self._head - self._tail

    @property
    def capacity(self) -> int:
        """Maximum number of transitions held."""
        return self._capacity

    @property
    def frame_capacity(self) -> int:
        """Frames the frame ring holds."""
        return self._fcap

    @property
    def stack(self) -> int:
        """Frames per observation (C for a frame stack, 1 for whole-observation frames)."""
        return self.layout.k

    @property
    def nbytes(self) -> int:
        """Bytes of preallocated storage: frames, frame slots, keys and the other fields, full capacity."""
        return self._frames.nbytes + self._refs.nbytes + self._key.nbytes + sum(a.nbytes for a in self._rows.values())

    @property
    def bytes_per_transition(self) -> float:
        """:attr:`nbytes` / :attr:`capacity`: storage per transition, frames included."""
        return self.nbytes / self._capacity

    @property
    def frames_per_transition(self) -> float:
        """New frames written per inserted transition so far (about 1 for stacked frames and long episodes)."""
        return self._fhead / max(1, self._head)

    # -- insert --------------------------------------------------------------
    def validate_batch(self, batch: dict) -> int:
        """Check a history batch (see :meth:`add`); return its number of transitions."""
        need = {"history", "row", "column", "boot", *self._rows}
        if not need <= set(batch) <= need | {"source", "overlap"}:
            raise KeyError(f"batch fields {sorted(batch)} != frame replay fields {sorted(need)} (+ source, overlap)")
        hist = np.asarray(batch["history"])
        if hist.ndim != 5 or hist.shape[2:] != self.layout.obs_shape or hist.dtype != self.layout.dtype:
            raise ValueError(f"history must be [R, B, *{self.layout.obs_shape}] {self.layout.dtype}, "
                             f"got {hist.shape} {hist.dtype}")
        n = len(np.asarray(batch["row"]))
        for name, limit in (("row", hist.shape[0]), ("column", hist.shape[1]), ("boot", hist.shape[0])):
            a = np.asarray(batch[name])
            if a.shape != (n,) or (n and (a.min() < 0 or a.max() >= limit)):
                raise ValueError(f"field {name!r} must hold {n} indices in [0, {limit}), got shape {a.shape}")
        for name, (shape, _) in self.spec.items():
            if name in self._rows and np.asarray(batch[name]).shape != (n,) + shape:
                raise ValueError(f"field {name!r}: expected shape ({n},)+{shape}, got {np.shape(batch[name])}")
        return n

    def add(self, batch: dict) -> np.ndarray:
        """Insert the transitions of one history batch; return the ring rows written, in batch order.

        ``batch``: ``history[R, B, *obs_shape]`` (B streams' observations in
        time order), per transition ``row`` (its obs: ``history[row,
        column]``), ``column``, ``boot`` (its next_obs: ``history[boot,
        column]``), ``action``, ``reward``, ``discount``; optionally ``source``
        (which sender: streams are ``(source, column)``, default 0) and
        ``overlap`` (leading rows that repeat the stream's previous batch's
        last rows, default 0). As in :class:`~mpirl.replay.ReplayBuffer`, more
        than ``capacity`` transitions keep only the last ``capacity``.
        """
        n = self.validate_batch(batch)
        cut = max(0, n - self._capacity)
        row, col, boot = (np.asarray(batch[k], np.int64)[cut:] for k in ("row", "column", "boot"))
        ser = self._store_frames(np.asarray(batch["history"]), row, col, boot, int(batch.get("source", 0)),
                                 int(batch.get("overlap", 0)))
        return self._insert(ser[row, col], ser[boot, col], {k: np.asarray(batch[k])[cut:] for k in self._rows})

    def _store_frames(self, hist, row, col, boot, source, overlap) -> np.ndarray:
        """Write the new frames of the rows the transitions use; return serials ``[R, B, k]`` (-1: unused row)."""
        lay, k, fcap = self.layout, self.layout.k, self._fcap
        r, b = hist.shape[:2]
        needed = np.zeros((r, b), bool)
        needed[row, col] = needed[boot, col] = True
        # Also the rows in between and after: one shifted frame each keeps the chain of shared frames
        # unbroken (a gap costs a full stack after it) and lets the next batch reuse the last rows.
        needed = np.logical_or.accumulate(needed, axis=0)
        most = k * int(needed.sum())
        if most > fcap:
            raise ValueError(f"a batch of up to {most} new frames does not fit a frame ring of {fcap}")
        # Reused frames must outlive this batch's writes; older than a quarter ring, they are not worth it
        # (a long-silent stream would hold back the eviction of everything inserted since).
        oldest = max(self._fhead + most - fcap, self._fhead - fcap // 4)
        ser = np.full((r, b, k), -1, np.int64)
        reused = self._reuse_overlap(hist, ser, source, min(overlap, r), oldest)
        shift = needed & ~reused
        shift[0] = False  # no previous row in this batch
        shift[1:] &= (reused | needed)[:-1]
        rows = np.flatnonzero(shift.any(axis=1))
        if lay.planes and rows.size:  # compare only from the first row that may share (reused rows need not)
            shift[rows[0]:] &= lay.shifted(hist[rows[0] - 1:])
        else:
            shift[:] = False
        full = np.flatnonzero((needed & ~reused & ~shift).ravel())
        # Shifted rows stream by stream (column-major): an observation's frames and its next_obs's are
        # then neighbours in the ring, one run of memory for a sample to read.
        shifted = np.flatnonzero(shift.T.ravel())
        shifted = shifted % r * b + shifted // r
        # Within a full stack, a frame equal to the one before it is stored once: an episode's first
        # stack is padded with copies of the reset frame (or with zeros), so that costs 1-2 frames, not k.
        dup = np.zeros((len(full), k), bool)
        if lay.planes and len(full):
            stacks = hist.reshape((r * b,) + lay.obs_shape)[full]
            dup[:, 1:] = (stacks[..., 1:] == stacks[..., :-1]).reshape(len(full), -1, k - 1).all(1)
        nf = int((~dup).sum()) + len(shifted)
        self._evict_frames_below(self._fhead + nf - fcap)
        # New serials in an order that makes each group one slice of the ring: channel 0 of the full
        # stacks, ..., channel k-1 of the full stacks, then the newest frames of the shifted rows.
        cells, serial = ser.reshape(r * b, k), self._fhead
        for c, planes in ((c, lay.plane(hist, c)) for c in range(k)):
            new = full[~dup[:, c]]
            cells[new, c] = serial + np.arange(len(new))
            cells[full[dup[:, c]], c] = cells[full[dup[:, c]], c - 1]
            self._write(planes, new, serial)
            serial += len(new)
        cells[shifted, k - 1] = serial + np.arange(len(shifted))
        self._write(lay.plane(hist, k - 1), shifted, serial)
        for i in np.unique(shifted // b):  # rows in time order: row i-1's serials are final before row i's
            ser[i, shift[i], :k - 1] = ser[i - 1, shift[i], 1:]
        self._fhead += nf
        if overlap > 0:  # what the stream's next batch starts with: serials, and bytes to check them by
            self._streams[source] = (ser[r - min(overlap, r):].copy(), hist[r - min(overlap, r):].copy())
        return ser

    def _write(self, planes, cells, serial) -> None:
        """Copy ``planes[cells]`` into the ring from ``serial`` on (into one slice, or two where it wraps)."""
        start, n = serial % self._fcap, len(cells)
        first = min(n, self._fcap - start)
        # Fancy indexing, not np.take: take makes a contiguous copy of a strided source first.
        if first:
            self._frames[start:start + first] = planes[cells[:first]]
        if n > first:
            self._frames[:n - first] = planes[cells[first:]]

    def _reuse_overlap(self, hist, ser, source, overlap, oldest) -> np.ndarray:
        """Take the serials of the leading rows that are byte-equal to the stream's last stored rows."""
        r, b = hist.shape[:2]
        reused = np.zeros((r, b), bool)
        serials, rows = self._streams.get(source, (np.zeros((0, b, self.layout.k), np.int64), None))
        m = len(serials)
        lo = max(0, overlap - m)  # row i of this batch is row m - overlap + i of the last one
        if lo >= overlap or serials.shape[1] != b:
            return reused
        old_s, old_rows = serials[m - overlap + lo:], rows[m - overlap + lo:]
        same = (hist[lo:overlap] == old_rows).reshape(overlap - lo, b, -1).all(-1)
        ok = same & (old_s.min(-1) >= max(oldest, 0))  # stored (no -1) and not too old to reuse
        ser[lo:overlap][ok] = old_s[ok]
        reused[lo:overlap] = ok
        return reused

    def _evict_frames_below(self, low: int) -> None:
        """Evict the oldest transitions whose key is below ``low`` (they use frames about to be overwritten)."""
        start = self._tail
        while self._tail < self._head:
            pos = np.arange(self._tail, min(self._head, self._tail + _WALK)) % self._capacity
            dead = self._key[pos] < low  # a prefix: keys never decrease from the oldest on
            n = len(pos) if dead.all() else int(np.argmin(dead))
            self._tail += n
            if n < len(pos):
                break
        self._evicted = (start, self._tail)

    def _lower_keys(self, key: int) -> None:
        """Lower the keys of the newest live transitions above ``key`` to it (keeps keys non-decreasing)."""
        end = self._head
        while end > self._tail:
            pos = np.arange(max(self._tail, end - _WALK), end) % self._capacity
            above = self._key[pos] > key  # a suffix of pos
            self._key[pos[above]] = key
            if not above[0]:
                return
            end -= len(pos)

    def _insert(self, obs_ser, next_ser, fields) -> np.ndarray:
        m, cap = len(obs_ser), self._capacity
        ser = np.concatenate([obs_ser, next_ser], axis=1)
        key = np.minimum.accumulate(ser.min(axis=1)[::-1])[::-1]
        self._lower_keys(int(key[0]) if m else self._fhead)
        pos = (self._head + np.arange(m, dtype=np.int64)) % cap
        self._refs[pos] = ser % self._fcap
        self._key[pos] = key
        for name, arr in self._rows.items():
            arr[pos] = fields[name]
        start, end = self._evicted
        # Rows the frames pushed out and no new transition overwrote: a prioritized replay zeroes them.
        gone = np.arange(max(start, self._head + m - cap), end, dtype=np.int64)
        self.dropped = gone % cap
        self._head += m
        self._tail = max(self._tail, self._head - cap)
        return pos

    # -- sample --------------------------------------------------------------
    def live(self, indices: np.ndarray) -> np.ndarray:
        """Which ring rows ``indices`` hold a live transition."""
        return (np.asarray(indices, np.int64) - self._tail) % self._capacity < len(self)

    def get(self, indices: np.ndarray) -> dict:
        """Rows ``indices`` as ``{field: array}``; ``obs``/``next_obs`` are views of one fresh frame gather."""
        indices = np.asarray(indices, dtype=np.int64)
        refs, k, n = self._refs[indices], self.layout.k, len(indices)
        # One gather, obs of all rows first: each half is then one contiguous block of frames.
        got = self._frames[np.concatenate([refs[:, :k], refs[:, k:]])]
        out = {"obs": self.layout.observations(got[:n]), "next_obs": self.layout.observations(got[n:])}
        out.update({name: arr[indices] for name, arr in self._rows.items()})
        return out

    def sample(self, batch_size: int, rng: np.random.Generator):
        """Draw ``batch_size`` live transitions uniformly with replacement: ``(indices, {field: array})``."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        draws = rng.integers(0, len(self), size=int(batch_size), dtype=np.int64)
        indices = (self._tail + draws) % self._capacity
        return indices, self.get(indices)

    # -- checkpoints ---------------------------------------------------------
    def state_dict(self) -> dict:
        """Arrays for a checkpoint; the big ones are views of the storage (valid until the next :meth:`add`)."""
        return frame_state(self)

    def load_state_dict(self, d: dict) -> None:
        """Restore what :meth:`state_dict` saved (same spec, capacities and stack)."""
        load_frame_state(self, d)
