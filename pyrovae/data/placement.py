r"""Where a run's data live: on the training device, or in host memory and streamed.

Data that fit on the device move there once (:meth:`PreparedData.to`) and every minibatch
is gathered there. Data that do not fit stay in host memory as :class:`HostRows`; each
minibatch is gathered on the host and copied to the device while the step before it
computes:

* the rows are gathered (``index_select``) into one of ``slots`` page-locked (pinned)
  staging buffers, and copied with ``non_blocking=True`` on a side CUDA stream into the
  device buffer of the same slot;
* the step's stream waits for that copy (an event) before it reads the batch, and the copy
  into a slot waits (on the device) for the step that last read the slot;
* with two slots (double buffering) the copy of batch :math:`i + 1` runs while step
  :math:`i` computes. Before refilling a staging buffer the host waits for the copy that
  last read it, which lets the host run at most ``slots`` steps ahead of the device; no
  value is ever read back.

:func:`place_data` decides. The rule (``placement="auto"``): with :math:`B` the float32
bytes of the training, validation and test rows and :math:`F` the free memory of the CUDA
device (``torch.cuda.mem_get_info``, before the networks are built), the data go to the
device when :math:`B \le` :data:`DEVICE_FRACTION` :math:`\cdot F` and stay in host memory
otherwise; the other half of the free memory is kept for the networks, their gradients,
Adam's two moments, the activations of a minibatch and the graphs of ``--fast``. On a CPU
the data are in host memory already: they are always "device".
"""
from dataclasses import replace
from typing import Callable, Iterable, Iterator, Optional

import torch

from ..errors import ConfigError, DataError
from .prepare import PreparedData

PLACEMENTS = ("auto", "device", "host")

#: the share of the device's free memory that the data may take under ``placement="auto"``
DEVICE_FRACTION = 0.5


class HostRows:
    """(N, D) float32 rows kept in host memory, pinned where CUDA is available (``pin=None``)
    or as ``pin`` says; a pin that fails (no driver, too little lockable memory) leaves the
    rows pageable, with one line to ``log``. Pinning copies the rows once (for a moment
    the host holds them twice).

    ``len``, ``shape``, ``device`` (the CPU) and indexing (host tensors) work as on a tensor;
    :meth:`batches` yields device minibatches."""

    def __init__(self, x: torch.Tensor, pin: Optional[bool] = None, log: Callable[[str], None] = print):
        rows = x.detach().to("cpu", torch.float32).contiguous()  # (N, D)
        if rows.dim() != 2:
            raise DataError(f"HostRows holds (N, D) rows, got shape {tuple(rows.shape)}; flatten each datapoint to a row")
        if (torch.cuda.is_available() if pin is None else pin) and not rows.is_pinned():
            try:
                rows = rows.pin_memory()
            except RuntimeError as error:
                log(f"the data stay in pageable host memory (pinning failed: {' '.join(str(error).split())[:120]})")
        self.rows = rows

    @property
    def pinned(self) -> bool:
        return self.rows.is_pinned()

    @property
    def shape(self) -> torch.Size:
        return self.rows.shape

    @property
    def device(self) -> torch.device:
        return self.rows.device

    @property
    def dtype(self) -> torch.dtype:
        return self.rows.dtype

    @property
    def nbytes(self) -> int:
        return self.rows.numel() * self.rows.element_size()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> torch.Tensor:
        return self.rows[index.cpu() if isinstance(index, torch.Tensor) else index]

    def __repr__(self) -> str:
        return f"HostRows({tuple(self.shape)}, {'pinned' if self.pinned else 'pageable'})"

    def batches(self, index_batches: Iterable[torch.Tensor], device, slots: int = 2) -> Iterator[torch.Tensor]:
        """Yield ``rows[idx]`` (B, D) on ``device`` for each host long tensor ``idx`` of
        ``index_batches``, the copy of each batch issued ``slots - 1`` batches ahead.

        A yielded batch lives in a buffer that is refilled ``slots`` batches later: use it
        before asking for the next (a step does) or clone it. On CUDA every copy is
        ordered before the caller's later work on the current stream when the generator
        ends or is closed."""
        if slots < 2:
            raise ValueError(f"slots must be at least 2 (double buffering), got {slots}")
        device, index_batches = torch.device(device), [i.cpu() for i in index_batches]
        if not index_batches:
            return
        cuda, width, shape = device.type == "cuda", max(len(i) for i in index_batches), self.rows.shape[1:]
        host = [torch.empty((width, *shape), pin_memory=cuda) for _ in range(slots)]  # (B, D) staging
        dev = [torch.empty((width, *shape), device=device) for _ in range(slots)]  # (B, D) where steps read
        if cuda:
            side, compute = torch.cuda.Stream(device), torch.cuda.current_stream(device)
            copied = [torch.cuda.Event() for _ in range(slots)]  # the copy into the slot is done
            consumed = [torch.cuda.Event() for _ in range(slots)]  # the step that read the slot is done

        def issue(j: int) -> None:
            k, n = j % slots, len(index_batches[j])
            if not cuda:
                torch.index_select(self.rows, 0, index_batches[j], out=host[k][:n])
                dev[k][:n].copy_(host[k][:n])
                return
            copied[k].synchronize()  # the last copy out of this staging buffer has finished
            torch.index_select(self.rows, 0, index_batches[j], out=host[k][:n])
            with torch.cuda.stream(side):
                side.wait_event(consumed[k])  # the step that read this slot's device buffer is done
                dev[k][:n].copy_(host[k][:n], non_blocking=True)
                copied[k].record(side)

        try:
            for j in range(min(slots - 1, len(index_batches))):
                issue(j)
            for j in range(len(index_batches)):
                if j + slots - 1 < len(index_batches):
                    issue(j + slots - 1)  # runs while step j computes
                k = j % slots
                if cuda:
                    compute.wait_event(copied[k])
                yield dev[k][:len(index_batches[j])]
                if cuda:
                    consumed[k].record(compute)
        finally:
            if cuda:
                compute.wait_stream(side)  # no later work on the current stream overtakes a copy

    def chunks(self, size: int, device) -> Iterator[torch.Tensor]:
        """The rows in order, ``size`` at a time, on ``device`` (see :meth:`batches`)."""
        return self.batches(torch.arange(len(self)).split(size), device)


def data_bytes(prepared: PreparedData) -> int:
    """Bytes of the training, validation and test rows as float32."""
    parts = (prepared.train_x, prepared.valid_x, prepared.test_x)
    return sum(4 * x.numel() for x in parts if x is not None)


def choose_placement(need: int, free: int) -> str:
    """``"device"`` when ``need`` bytes of data are at most :data:`DEVICE_FRACTION` of the
    ``free`` bytes of device memory, else ``"host"``."""
    return "device" if need <= DEVICE_FRACTION * free else "host"


def place_data(prepared: PreparedData, device, placement: str = "auto",
               log: Callable[[str], None] = print) -> PreparedData:
    """``prepared`` where the run keeps it: moved to ``device`` once (``"device"``, and
    always on a CPU), or kept in host memory as :class:`HostRows` and streamed
    (``"host"``); ``"auto"`` chooses by the rule in this module's docstring and says
    which with one line."""
    if placement not in PLACEMENTS:
        raise ConfigError(f"data placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    device = torch.device(device)
    if device.type != "cuda":
        if placement == "host":
            log(f"data placement 'host' is moot on {device.type}: the steps run where the data are")
        return prepared.to(device)
    need = data_bytes(prepared)
    if placement == "auto":
        free, _ = torch.cuda.mem_get_info(device)
        placement = choose_placement(need, free)
        log(f"data: {need / 2**30:.2f} GiB as float32, {free / 2**30:.2f} GiB free on the device: "
            + ("on the device" if placement == "device" else
               f"over {DEVICE_FRACTION:.0%} of it, kept in host memory and streamed per minibatch"))
    if placement == "device":
        return prepared.to(device)
    keep = lambda x: None if x is None else HostRows(x, log=log)  # noqa: E731
    return replace(prepared.labels_to(device), train_x=keep(prepared.train_x), test_x=keep(prepared.test_x),
                   valid_x=keep(prepared.valid_x))
