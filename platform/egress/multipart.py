"""multipart/form-data bodies for ``formFields`` (Tale) / ``form_fields`` (DESIGN §3).

urllib3's encoder writes the parts (RFC 7578; names and file names are escaped the
WHATWG way, so a quote or CR/LF in them cannot end the header); the media type of
each file part is checked here first (:func:`~bollard.platform.files.names.clean_content_type`),
because urllib3 writes it as given.
"""

from __future__ import annotations

import base64
import binascii

from urllib3.fields import RequestField
from urllib3.filepost import encode_multipart_formdata

from bollard.platform.files.names import clean_content_type
from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.protocol import FormField


def encode_form(fields: tuple[FormField, ...]) -> tuple[bytes, str]:
    """``(body, content type with boundary)`` of ``fields`` in order. A part with
    ``is_base64`` carries the decoded bytes; a part with a ``file_name`` or
    ``content_type`` is a file part. Raises ``HttpRequestRefused("connector_error")``
    naming the field for invalid base64 or an invalid content type."""
    parts: list[RequestField] = []
    for index, item in enumerate(fields):
        where = f"formFields[{index}]"
        data: bytes
        if item.is_base64:
            try:
                data = base64.b64decode(item.value, validate=True)
            except (binascii.Error, ValueError):
                raise HttpRequestRefused("connector_error", f"{where}.value is not valid base64.") from None
        else:
            data = item.value.encode("utf-8")
        part = RequestField(name=item.name, data=data, filename=item.file_name)
        content_type = None
        if item.content_type is not None:
            try:
                content_type = clean_content_type(item.content_type, f"{where}.contentType")
            except ValueError as exc:
                raise HttpRequestRefused("connector_error", f"{exc}.") from None
        elif item.file_name is not None:
            content_type = "application/octet-stream"
        part.make_multipart(content_type=content_type)
        parts.append(part)
    body, content_type_header = encode_multipart_formdata(parts)
    return body, content_type_header
