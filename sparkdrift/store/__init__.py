"""All Delta I/O: inputs read with time travel (`tables`), and the monitor's own tables behind
one interface (`MonitorStore`: `DeltaStore`, and `MemoryStore` for tests and notebooks)."""
from sparkdrift.store.base import TABLES, MonitorStore, Progress, Written
from sparkdrift.store.delta import DeltaStore
from sparkdrift.store.memory import MemoryStore

__all__ = ["TABLES", "DeltaStore", "MemoryStore", "MonitorStore", "Progress", "Written"]
