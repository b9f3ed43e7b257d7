"""`python -m maskformer` writes a picture; bad input gives a message, not a traceback."""

import subprocess
import sys

import pytest

from maskformer.__main__ import main


def test_demo_writes_png(tmp_path, capsys):
    out = tmp_path / "demo.png"
    main(["--preset", "tiny", "--size", "96", "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_demo_from_checkpoint_dir(tmp_path):
    from maskformer import MaskFormer, MaskFormerConfig

    MaskFormer(MaskFormerConfig.tiny(num_classes=3, id2label={0: "a", 1: "b", 2: "c"})).save_pretrained(tmp_path / "ckpt")
    main(["demo", "--checkpoint", str(tmp_path / "ckpt"), "--size", "64", "--out", str(tmp_path / "x.png")])
    assert (tmp_path / "x.png").exists()


def test_bad_image_and_checkpoint_messages(tmp_path):
    with pytest.raises(SystemExit, match="cannot read image"):
        main(["--preset", "tiny", "--image", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match="missing does not exist"):
        main(["--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")])


def test_module_entry_point(tmp_path):
    result = subprocess.run([sys.executable, "-m", "maskformer", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--checkpoint" in result.stdout
