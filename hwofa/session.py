"""One run's loaded inputs: the supernet (loaded and hashed once), its predictor, the dataset, and
one Exporter per device, handed to every step instead of each step loading them again."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export import Exporter
from hwofa.common import UserError, resolve_run, sha256_file
from profiler import DeviceProfile
from supernet import Dataset, SearchSpace, Supernet, SupernetMeta, load_dataset, load_supernet


def supernet_dir(run: str | os.PathLike | None) -> Path:
    """The supernet run folder (default: the shipped one), refused clearly when it is not one."""
    if run is None:
        return resolve_run(None)
    path = Path(run)
    if path.is_file():
        hint = f" (here: '{path.parent}')" if path.name == "supernet.json" else ""
        raise UserError(f"--supernet '{run}' is a file; give the run folder that holds supernet.json and "
                        f"supernet.safetensors{hint}.")
    if not path.exists():
        raise UserError(f"--supernet '{run}' does not exist; give a run folder written by `hwofa train --out RUN`.")
    if not (path / "supernet.json").exists():
        raise UserError(f"--supernet '{run}' is not a supernet run folder: it holds no supernet.json "
                        "(`hwofa train --out RUN` writes one).")
    return path


@dataclass
class Session:
    """What every step of one command needs, made once. `seed` drives the searches."""

    run: Path
    net: Supernet
    meta: SupernetMeta
    data_dir: str | os.PathLike | None = None
    trust_command: bool = False
    progress: bool = True
    seed: int = 0
    _predictor: Any = None
    _data: Dataset | None = None
    _exporters: dict[str, Exporter] = field(default_factory=dict)

    @classmethod
    def open(cls, supernet: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
             trust_command: bool = False, progress: bool = True, seed: int = 0) -> Session:
        run = supernet_dir(supernet)
        net, meta = load_supernet(run)
        return cls(run, net, meta, data_dir, trust_command, progress, seed)

    @property
    def space(self) -> SearchSpace:
        return self.net.space

    @property
    def predictor(self) -> Any:
        if self._predictor is None:
            from evolve import load_predictor

            self._predictor = load_predictor(self.run, self.space, self.meta.weights_sha256)
        return self._predictor

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_dataset(self.meta.dataset.name, self.data_dir)
        return self._data

    def exporter(self, profile: DeviceProfile) -> Exporter:
        """The device's Exporter, sharing this session's supernet and dataset."""
        if profile.name not in self._exporters:
            self._exporters[profile.name] = Exporter(profile, self.run, self.data_dir, loaded=(self.net, self.meta),
                                                     data=self.data)
        return self._exporters[profile.name]

    def inputs(self) -> dict[str, Any]:
        """What a search depends on (search.json's `inputs`; readers check it)."""
        return {"supernet": str(self.run), "supernet_sha256": self.meta.weights_sha256,
                "space_hash": self.space.space_hash(),
                "predictor_sha256": sha256_file(self.run / "accuracy_predictor.safetensors")}
