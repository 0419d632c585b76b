# Type stub of the wsgate package: the public names, re-exported from the
# modules that define them (which carry inline type hints and docstrings).
from ._auth import AuthRequest as AuthRequest
from ._config import Config as Config, OptionInfo as OptionInfo, OptionValue as OptionValue, options as options
from ._errors import (
    BusyError as BusyError,
    ClosedError as ClosedError,
    ClusterError as ClusterError,
    InternalError as InternalError,
    InvalidArgumentError as InvalidArgumentError,
    LimitError as LimitError,
    NetworkError as NetworkError,
    NoMemoryError as NoMemoryError,
    NotFoundError as NotFoundError,
    StateError as StateError,
    Status as Status,
    TimedOutError as TimedOutError,
    GoneError as GoneError,
    TLSError as TLSError,
    WsgateError as WsgateError,
)
from ._history import HistoryMessage as HistoryMessage, Position as Position
from ._results import Presence as Presence
from ._server import (
    QUEUE_POLICIES as QUEUE_POLICIES,
    RECONNECT_ADVICE as RECONNECT_ADVICE,
    close_code_advice as close_code_advice,
    Connection as Connection,
    Message as Message,
    Server as Server,
    logger as logger,
)

__version__: str

def library_version() -> str: ...
