"""Upload: a zip or a set of files becomes an installed integration (DESIGN §10).

:mod:`.parts` reads the multipart parts of an upload under the caps; :mod:`.archive` reads
an upload into a package's files under every rule of DESIGN §10;
:mod:`.install` validates them with the folder loader's code and installs them.
"""

from bollard.platform.upload.archive import MAX_TOTAL_BYTES, read_file_set, read_zip
from bollard.platform.upload.install import Installer, preview, remove_package, write_package

__all__ = [
    "MAX_TOTAL_BYTES",
    "Installer",
    "preview",
    "read_file_set",
    "read_zip",
    "remove_package",
    "write_package",
]
