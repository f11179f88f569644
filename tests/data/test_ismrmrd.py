"""ISMRMRD header: write/parse round trip, namespaces, fallbacks and malformed XML."""

from __future__ import annotations

import pytest

from pipeline.data.errors import DataError
from pipeline.data.ismrmrd import default_encoding, parse_ismrmrd_header, write_ismrmrd_header

FASTMRI_KNEE = b"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD" xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <encoding>
    <encodedSpace><matrixSize><x>640</x><y>368</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>280</x><y>161</y><z>4.5</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>320</x><y>320</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>140</x><y>140</y><z>3</z></fieldOfView_mm></reconSpace>
    <encodingLimits>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>333</maximum><center>167</center></kspace_encoding_step_1>
    </encodingLimits>
  </encoding>
</ismrmrdHeader>"""


def test_parse_fastmri_style_header():
    info = parse_ismrmrd_header(FASTMRI_KNEE)
    assert info.encoded_size == (640, 368) and info.recon_size == (320, 320)
    assert (info.pe_center, info.pe_maximum) == (167, 333)
    assert info.pe_range == (368 // 2 - 167, 368 // 2 - 167 + 333 + 1) == (17, 351)
    assert info.encoded_fov_mm == (280.0, 161.0, 4.5) and info.recon_fov_mm == (140.0, 140.0, 3.0)
    assert info.from_header


@pytest.mark.parametrize("pe_range", [(4, 132), (0, 136), (10, 120)])
def test_write_parse_round_trip(pe_range):
    xml = write_ismrmrd_header((256, 136), (128, 128), pe_range, (400.0, 212.5, 2.0), (200.0, 200.0, 2.0), num_coils=8)
    info = parse_ismrmrd_header(xml)
    assert info.encoded_size == (256, 136) and info.recon_size == (128, 128) and info.pe_range == pe_range
    assert info.encoded_fov_mm == (400.0, 212.5, 2.0)
    assert parse_ismrmrd_header(xml.decode()).pe_range == pe_range  # text works too


def test_header_without_namespace_or_limits():
    xml = (
        "<ismrmrdHeader><encoding><encodedSpace><matrixSize><x>64</x><y>40</y></matrixSize></encodedSpace>"
        "</encoding></ismrmrdHeader>"
    )
    info = parse_ismrmrd_header(xml)
    assert info.pe_range == (0, 40) and info.recon_size == (40, 40) and info.encoded_fov_mm is None


@pytest.mark.parametrize(
    "xml, problem",
    [(b"<ismrmrdHeader><encoding>", "not valid XML"), (b"<ismrmrdHeader/>", "no encoding/encodedSpace/matrixSize")],
)
def test_malformed_header(xml, problem):
    with pytest.raises(DataError, match=f"vol.h5: ismrmrd_header .*{problem}"):
        parse_ismrmrd_header(xml, file="vol.h5")


def test_default_encoding():
    info = default_encoding((640, 276))
    assert info.recon_size == (276, 276) and info.pe_range == (0, 276) and not info.from_header
    assert default_encoding((32, 24), (16, 16)).recon_size == (16, 16)


def test_write_rejects_bad_pe_range():
    with pytest.raises(ValueError, match="pe_range"):
        write_ismrmrd_header((32, 24), (16, 16), (14, 20))
