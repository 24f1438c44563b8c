"""Repro: the incident sweep's printed sample (Finding.sample: 40 characters either side of a hit, then
mask_pans) can cut a NEIGHBOURING card number at the window's left edge. The cut part (12 digits: BIN
digits 5-6, the 6 middle digits and the last 4) is too short for mask_pans, so it is printed in clear;
with pan_bin/pan_last4 from the warehouse it gives back the whole card."""

import tempfile
from pathlib import Path

from fraud_assets.lib.pan_scan import scan_deployment
from fraud_assets_tests import raw_cleaned_support as s

a, b = s.PANS[1], s.PANS[3]
data = Path(tempfile.mkdtemp()) / "data"
data.mkdir()
# A leaked log line: card `b` (the first hit, whose context is sampled), 28 other characters, card `a`:
# the sample's window (40 characters past `b`) ends after a's first 12 digits.
(data / "incident.log").write_text("ref " + b + " status=declined reason=dnh " + a + " end\n")
for f in scan_deployment(data):
    print(f)
    print("  BIN + middle 6 digits of card a printed in clear:", a[:12] in f.sample)
for f in scan_deployment(data, pans=[b]):
    print("precise mode:", f)
    print("  BIN + middle 6 digits of card a printed in clear:", a[:12] in f.sample)
