"""Mosquitto password/ACL files shared by several Atoll processes."""

from atoll.ingest.mosquitto_auth import MosquittoAuth


def users(path) -> set[str]:
    return {line.split(":", 1)[0] for line in path.read_text().splitlines()}


def test_two_processes_changing_the_same_files_keep_each_others_devices(tmp_path):
    pw, acl = tmp_path / "passwd", tmp_path / "acl"
    a = MosquittoAuth(pw, acl, None, admin_password="p")
    b = MosquittoAuth(pw, acl, None, admin_password="p")  # loaded before a wrote anything
    a.set_secret("d1", "s1")
    b.set_secret("d2", "s2")
    a.set_disabled("d2", True)  # a never saw d2 itself; it finds it in the file
    assert users(pw) == {"atoll-ingest", "d1"}
    b.set_disabled("d2", False)
    b.remove("d1")
    assert users(pw) == {"atoll-ingest", "d2"}
    a.set_secret("d3", "s3")
    assert users(pw) == {"atoll-ingest", "d2", "d3"}
    assert "user atoll-ingest" in acl.read_text()
