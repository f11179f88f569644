"""The parts of the ISMRMRD XML header that reconstruction needs: matrix sizes and the padding band.

fastMRI files store the ISMRMRD header as XML bytes in the dataset ``ismrmrd_header``. Three things
are read from it:

- ``encoding/encodedSpace/matrixSize`` ``(x, y)``: the stored k-space size ``(H, W)`` (readout,
  phase encode), readout usually 2x oversampled;
- ``encoding/reconSpace/matrixSize`` ``(x, y)``: the centre-crop size ``(Hr, Wr)`` of the image;
- ``encoding/encodingLimits/kspace_encoding_step_1`` ``center`` and ``maximum``: the acquired
  phase-encode columns are ``[W // 2 - center, W // 2 - center + maximum + 1)``; columns outside
  were never acquired (zero in the file) and form the *padding band* that masks must exclude.

:func:`write_ismrmrd_header` writes a minimal, consistent header (used by the simulator), and
:func:`parse_ismrmrd_header` reads it back. :func:`default_encoding` is the fallback for files
without a header.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.data.errors import DataError

ISMRMRD_NAMESPACE = "http://www.ismrm.org/ISMRMRD"


@dataclass(frozen=True)
class EncodingInfo:
    """Matrix sizes and acquired phase-encode range of one volume.

    Attributes:
        encoded_size: ``(H, W)`` encoded matrix (readout, phase encode), in pixels.
        recon_size: ``(Hr, Wr)`` reconstruction (centre-crop) matrix, in pixels.
        pe_center: ``kspace_encoding_step_1`` ``center`` (index of k_y = 0 counted from the first
            acquired column).
        pe_maximum: ``kspace_encoding_step_1`` ``maximum`` (acquired columns minus one).
        encoded_fov_mm: ``(x, y, z)`` field of view of the encoded matrix in mm, ``None`` if unknown.
        recon_fov_mm: ``(x, y, z)`` field of view of the reconstruction matrix in mm, ``None`` if unknown.
        from_header: ``False`` when the values are fallbacks for a file without a header.
    """

    encoded_size: tuple[int, int]
    recon_size: tuple[int, int]
    pe_center: int
    pe_maximum: int
    encoded_fov_mm: tuple[float, float, float] | None = None
    recon_fov_mm: tuple[float, float, float] | None = None
    from_header: bool = True

    @property
    def pe_range(self) -> tuple[int, int]:
        """``[start, stop)`` of the acquired phase-encode columns (fastMRI's padding left/right)."""
        start = self.encoded_size[1] // 2 - self.pe_center
        return start, start + self.pe_maximum + 1


def default_encoding(kspace_size: Sequence[int], recon_size: Sequence[int] | None = None) -> EncodingInfo:
    """Fallback encoding for a file without an ISMRMRD header.

    Args:
        kspace_size: ``(H, W)`` of the stored k-space.
        recon_size: ``(Hr, Wr)``, e.g. the shape of the stored reconstruction; ``None`` gives
            fastMRI's ``(W, W)`` crop (``(min(H, W), W)`` if the readout is shorter than ``W``).

    Returns:
        An :class:`EncodingInfo` whose phase-encode range covers all ``W`` columns.
    """
    h, w = int(kspace_size[0]), int(kspace_size[1])
    recon = (min(h, w), w) if recon_size is None else (int(recon_size[0]), int(recon_size[1]))
    return EncodingInfo((h, w), recon, pe_center=w // 2, pe_maximum=w - 1, from_header=False)


def _children(root: ET.Element) -> tuple[str, dict[str, str]]:
    """Namespace prefix for ``find`` paths, taken from the root tag (``{uri}name``)."""
    if root.tag.startswith("{"):
        return "n:", {"n": root.tag[1 : root.tag.index("}")]}
    return "", {}


def parse_ismrmrd_header(xml: bytes | str, file: str = "<ismrmrd_header>") -> EncodingInfo:
    """Parse the fields of :class:`EncodingInfo` from ISMRMRD XML.

    Works with and without the ISMRMRD namespace. Only the first ``encoding`` element is used
    (fastMRI files have one).

    Args:
        xml: the header, as stored in the ``ismrmrd_header`` dataset (bytes) or as text.
        file: file name used in error messages.

    Returns:
        The parsed :class:`EncodingInfo`. A missing ``kspace_encoding_step_1`` means all columns were
        acquired; a missing ``reconSpace`` gives fastMRI's ``(W, W)`` crop.

    Raises:
        DataError: if the XML is malformed or lacks ``encodedSpace/matrixSize``, or a value is not
            an integer.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise DataError(file, f"ismrmrd_header is not valid XML ({err})") from None
    p, ns = _children(root)

    def text(path: str) -> str | None:
        node = root.find("/".join(p + part for part in path.split("/")), ns)
        return None if node is None or node.text is None else node.text.strip()

    def integer(path: str) -> int | None:
        value = text(path)
        if value is None:
            return None
        try:
            return int(float(value))
        except ValueError:
            raise DataError(file, f"ismrmrd_header field {path} is not a number: {value!r}") from None

    def fov(space: str) -> tuple[float, float, float] | None:
        values = [text(f"encoding/{space}/fieldOfView_mm/{axis}") for axis in "xyz"]
        return None if None in values else tuple(float(v) for v in values)  # type: ignore[misc,arg-type]

    enc_h, enc_w = integer("encoding/encodedSpace/matrixSize/x"), integer("encoding/encodedSpace/matrixSize/y")
    if enc_h is None or enc_w is None:
        raise DataError(file, "ismrmrd_header has no encoding/encodedSpace/matrixSize x and y")
    rec_h, rec_w = integer("encoding/reconSpace/matrixSize/x"), integer("encoding/reconSpace/matrixSize/y")
    recon = (min(enc_h, enc_w), enc_w) if rec_h is None or rec_w is None else (rec_h, rec_w)
    limits = "encoding/encodingLimits/kspace_encoding_step_1"
    center, maximum = integer(f"{limits}/center"), integer(f"{limits}/maximum")
    if center is None or maximum is None:
        center, maximum = enc_w // 2, enc_w - 1
    return EncodingInfo(
        encoded_size=(enc_h, enc_w),
        recon_size=recon,
        pe_center=center,
        pe_maximum=maximum,
        encoded_fov_mm=fov("encodedSpace"),
        recon_fov_mm=fov("reconSpace"),
    )


def write_ismrmrd_header(
    encoded_size: Sequence[int],
    recon_size: Sequence[int],
    pe_range: Sequence[int] | None = None,
    encoded_fov_mm: Sequence[float] | None = None,
    recon_fov_mm: Sequence[float] | None = None,
    num_coils: int | None = None,
) -> bytes:
    """Write a minimal ISMRMRD header consistent with a stored k-space volume.

    Args:
        encoded_size: ``(H, W)`` of the stored k-space (readout, phase encode).
        recon_size: ``(Hr, Wr)`` centre-crop size of the image.
        pe_range: ``[start, stop)`` acquired phase-encode columns; ``None`` = all ``W`` columns.
        encoded_fov_mm: ``(x, y, z)`` field of view of the encoded matrix in mm (optional).
        recon_fov_mm: ``(x, y, z)`` field of view of the reconstruction matrix in mm (optional).
        num_coils: receiver channels, written to ``acquisitionSystemInformation`` (optional).

    Returns:
        UTF-8 XML bytes in the ISMRMRD namespace, as stored in fastMRI's ``ismrmrd_header``.

    Raises:
        ValueError: if ``pe_range`` is empty, outside ``[0, W]``, or does not contain the centre
            column ``W // 2``.
    """
    enc_h, enc_w = int(encoded_size[0]), int(encoded_size[1])
    start, stop = (0, enc_w) if pe_range is None else (int(pe_range[0]), int(pe_range[1]))
    if not 0 <= start <= enc_w // 2 < stop <= enc_w:
        raise ValueError(f"pe_range {(start, stop)} must lie in [0, {enc_w}] and contain column {enc_w // 2}")
    q = f"{{{ISMRMRD_NAMESPACE}}}"
    root = ET.Element(q + "ismrmrdHeader")
    if num_coils is not None:
        system = ET.SubElement(root, q + "acquisitionSystemInformation")
        ET.SubElement(system, q + "receiverChannels").text = str(int(num_coils))
    encoding = ET.SubElement(root, q + "encoding")
    spaces = (("encodedSpace", (enc_h, enc_w), encoded_fov_mm), ("reconSpace", recon_size, recon_fov_mm))
    for space, size, fov in spaces:
        node = ET.SubElement(encoding, q + space)
        matrix = ET.SubElement(node, q + "matrixSize")
        for axis, value in zip("xyz", (int(size[0]), int(size[1]), 1)):
            ET.SubElement(matrix, q + axis).text = str(value)
        if fov is not None:
            fov_node = ET.SubElement(node, q + "fieldOfView_mm")
            for axis, value in zip("xyz", fov):
                ET.SubElement(fov_node, q + axis).text = repr(float(value))
    limits = ET.SubElement(ET.SubElement(encoding, q + "encodingLimits"), q + "kspace_encoding_step_1")
    for name, value in (("minimum", 0), ("maximum", stop - start - 1), ("center", enc_w // 2 - start)):
        ET.SubElement(limits, q + name).text = str(value)
    ET.SubElement(encoding, q + "trajectory").text = "cartesian"
    return ET.tostring(root, encoding="utf-8", xml_declaration=True, default_namespace=ISMRMRD_NAMESPACE)
