"""The upload receiver: a ``multipart/form-data`` body parsed as it streams in, its file part
written straight to a temporary file (counted, so an oversized body is refused early)."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from genreflow.data.audio import SUPPORTED_EXTENSIONS

#: Multipart overhead (boundaries, part headers, small extra fields) allowed beyond the file.
FORM_OVERHEAD_BYTES = 64 * 1024

#: Content types accepted for the file part besides ``audio/*`` (what browsers and curl send
#: for files they do not recognise, and Ogg's registered types).
GENERIC_CONTENT_TYPES = ("application/octet-stream", "application/ogg", "video/ogg")


class ApiError(Exception):
    """A refused request: ``status``, a short ``error``, a ``detail`` naming the problem, and
    any ``headers`` the response needs (``Retry-After``)."""

    def __init__(
        self, status: int, error: str, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


@dataclass
class Upload:
    """The received file: the client's file name and content type, where it lies, its size."""

    filename: str
    content_type: str | None
    path: Path
    size: int


class UploadReceiver:
    """Parse a ``multipart/form-data`` body as it arrives; write the ``file`` part to disk.

    Parameters
    ----------
    boundary : bytes
        The multipart boundary from the request's Content-Type.
    temp_dir : Path
        Where the temporary file goes.
    max_bytes : int
        Largest accepted file; one byte more raises :class:`ApiError` (413) at once.

    Feed the body with :meth:`feed`, end with :meth:`finish`; :meth:`cleanup` (always call it)
    removes the temporary file.
    """

    def __init__(self, *, boundary: bytes, temp_dir: Path, max_bytes: int) -> None:
        from python_multipart import MultipartParser

        self.temp_dir = temp_dir
        self.max_bytes = max_bytes
        self.upload: Upload | None = None
        self._other_bytes = 0
        self._fh = None
        self._in_file = False
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        """Parse the next piece of the body."""
        from python_multipart.exceptions import MultipartParseError

        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise ApiError(400, "malformed multipart body", str(exc)) from None

    def finish(self) -> Upload:
        """End of body: the received file.

        Raises
        ------
        ApiError
            400 when there was no ``file`` part or it was empty.
        """
        from python_multipart.exceptions import MultipartParseError

        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise ApiError(400, "malformed multipart body", str(exc)) from None
        self._close_file()
        if self.upload is None:
            raise ApiError(
                400,
                "no file",
                "the form has no file in a field named 'file' (curl -F file=@clip.wav)",
            )
        if self._in_file:
            raise ApiError(400, "malformed multipart body", "the body ended inside the file part")
        if self.upload.size == 0:
            raise ApiError(400, "empty upload", f"{self.upload.filename}: empty file (0 bytes)")
        return self.upload

    def cleanup(self) -> None:
        """Close and remove the temporary file (safe to call more than once)."""
        self._close_file()
        if self.upload is not None:
            with contextlib.suppress(FileNotFoundError):
                self.upload.path.unlink()

    # ---------------------------------------------------------------- parser callbacks

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def _on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") != b"file":
            return  # another form field: counted, not kept
        if self.upload is not None:
            raise ApiError(400, "more than one file", "send exactly one file per request")
        raw_name = options.get(b"filename")
        if raw_name is None:
            raise ApiError(
                400, "no file", "the field 'file' must be a file upload (curl -F file=@clip.wav)"
            )
        filename = _display_name(raw_name.decode("utf-8", "replace"))
        ext = Path(filename).suffix.lower()
        if ext not in SUPPORTED_EXTENSIONS:
            raise ApiError(
                415,
                "unsupported media type",
                f"{filename}: unsupported file type '{ext or '(none)'}' "
                f"(supported: {' '.join(SUPPORTED_EXTENSIONS)})",
            )
        content_type = self._headers.get(b"content-type")
        ctype = (
            content_type.decode("latin-1").split(";")[0].strip().lower() if content_type else None
        )
        if ctype and not (ctype.startswith("audio/") or ctype in GENERIC_CONTENT_TYPES):
            raise ApiError(
                415,
                "unsupported media type",
                f"{filename}: content type '{ctype}' is not audio "
                f"(send audio/* or application/octet-stream)",
            )
        fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=ext, dir=self.temp_dir)
        self._fh = os.fdopen(fd, "wb")
        self.upload = Upload(filename=filename, content_type=ctype, path=Path(tmp), size=0)
        self._in_file = True

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if not self._in_file:
            self._other_bytes += n
            if self._other_bytes > FORM_OVERHEAD_BYTES:
                raise ApiError(
                    413,
                    "upload too large",
                    f"form fields other than 'file' exceed {FORM_OVERHEAD_BYTES // 1024} KiB",
                )
            return
        self.upload.size += n
        if self.upload.size > self.max_bytes:
            raise ApiError(
                413,
                "upload too large",
                f"{self.upload.filename}: more than {mib(self.max_bytes)} (serve.max_upload_mb)",
            )
        self._fh.write(data[start:end])

    def _on_part_end(self) -> None:
        if self._in_file:
            self._close_file()
            self._in_file = False

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _display_name(name: str) -> str:
    # Browsers send a bare name, some clients a path (C:\...\clip.wav); keep the last part,
    # printable characters only: it is echoed back and logged.
    base = re.split(r"[\\/]", name)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable())[:255]
    return cleaned or "upload"


def mib(n: int) -> str:
    return f"{n / (1024 * 1024):.3g} MiB"
