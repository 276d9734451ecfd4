from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Level(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTSET: _ClassVar[Level]
    DEBUG: _ClassVar[Level]
    STREAM: _ClassVar[Level]
    INFO: _ClassVar[Level]
    LOGON: _ClassVar[Level]
    LOGOUT: _ClassVar[Level]
    TRADE: _ClassVar[Level]
    SCHEDULE: _ClassVar[Level]
    REPORT: _ClassVar[Level]
    WARNING: _ClassVar[Level]
    ERROR: _ClassVar[Level]
    CRITICAL: _ClassVar[Level]
NOTSET: Level
DEBUG: Level
STREAM: Level
INFO: Level
LOGON: Level
LOGOUT: Level
TRADE: Level
SCHEDULE: Level
REPORT: Level
WARNING: Level
ERROR: Level
CRITICAL: Level

class LogRequest(_message.Message):
    __slots__ = ("timestamp", "hostname", "logger_name", "module", "level", "filename", "function_name", "line_number", "message", "path_name", "process_id", "process_name", "thread_id", "thread_name", "service_name", "stack_trace", "attributes")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    LOGGER_NAME_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_NAME_FIELD_NUMBER: _ClassVar[int]
    LINE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PATH_NAME_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_NAME_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    STACK_TRACE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    timestamp: str
    hostname: str
    logger_name: str
    module: str
    level: Level
    filename: str
    function_name: str
    line_number: str
    message: str
    path_name: str
    process_id: str
    process_name: str
    thread_id: str
    thread_name: str
    service_name: str
    stack_trace: str
    attributes: _containers.RepeatedCompositeFieldContainer[Attribute]
    def __init__(self, timestamp: _Optional[str] = ..., hostname: _Optional[str] = ..., logger_name: _Optional[str] = ..., module: _Optional[str] = ..., level: _Optional[_Union[Level, str]] = ..., filename: _Optional[str] = ..., function_name: _Optional[str] = ..., line_number: _Optional[str] = ..., message: _Optional[str] = ..., path_name: _Optional[str] = ..., process_id: _Optional[str] = ..., process_name: _Optional[str] = ..., thread_id: _Optional[str] = ..., thread_name: _Optional[str] = ..., service_name: _Optional[str] = ..., stack_trace: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[Attribute, _Mapping]]] = ...) -> None: ...

class Attribute(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class LogBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[LogRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[LogRequest, _Mapping]]] = ...) -> None: ...

class LogResponse(_message.Message):
    __slots__ = ("success",)
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    success: bool
    def __init__(self, success: _Optional[bool] = ...) -> None: ...
