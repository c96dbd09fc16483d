from xai_core.machine import cpu_flags, cpu_model

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse4_2 avx avx2 avx512_vnni
bugs\t\t: sysret_ss_attrs

processor\t: 1
model name\t: another name on the second core
flags\t\t: fpu
"""


def test_model_name_and_flags_come_from_the_first_processor(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert cpu_model(path) == "AMD EPYC 9B14"
    assert cpu_flags(path) == ["fpu", "sse4_2", "avx", "avx2", "avx512_vnni"]


def test_unreadable_or_incomplete_cpuinfo_gives_none_and_no_flags(tmp_path):
    assert cpu_model(tmp_path / "missing") is None and cpu_flags(tmp_path / "missing") == []
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nvendor_id\t: ARM\n")
    assert cpu_model(path) is None and cpu_flags(path) == []
