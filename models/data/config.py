"""Settings and constants of a dataset build (`hmu data build`)."""

from __future__ import annotations

from dataclasses import dataclass

FORMAT_VERSION = 1
FPS = 20.0
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class BuildConfig:
    min_frames: int = 40  # feature frames; HumanML3D loaders drop motions with T < 40
    max_frames: int = 196  # feature frames per window; loaders drop T >= 200, 196 = max_motion_length
    captions_per_motion: int = 3  # template captions (KIT-ML captions come on top)
    mirror: bool = True
    seed: int = 0  # salt of the split hash
    val_fraction: float = 0.05  # non-violent clips (HumanML3D: 80 / 5 / 15)
    test_fraction: float = 0.15
    violent_test_fraction: float = 1 / 3  # per violent kind, at least one clip
    kitml_min_coverage: float = 0.5  # a KIT-ML caption is kept for a window covering this much of it
    bvh_scale: float = 0.01  # BVH units -> metres (centimetres)

    def __post_init__(self) -> None:
        if not 2 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 2 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")
        if self.max_frames >= 200:
            raise ValueError(
                f"max_frames must be < 200 (HumanML3D loaders drop longer motions), got {self.max_frames}"
            )
        if self.captions_per_motion < 1:
            raise ValueError(f"captions_per_motion must be >= 1, got {self.captions_per_motion}")
        if not (
            self.val_fraction >= 0 and self.test_fraction >= 0 and self.val_fraction + self.test_fraction < 1
        ):
            raise ValueError(f"bad split fractions: val {self.val_fraction}, test {self.test_fraction}")
        if not 0 < self.violent_test_fraction < 1:
            raise ValueError(f"violent_test_fraction must be in (0, 1), got {self.violent_test_fraction}")
