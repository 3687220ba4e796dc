"""Users' files (issue 20): uploaded, listed, downloaded and deleted by their owner only,
under a size limit and a quota, with their type sniffed from the bytes; stored on the local
file system and, the same way, in a real S3-compatible server (moto's, on loopback)."""

import socket
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone

from files.models import StoredFile
from files.services import file_bytes, file_get, file_store, files_expired_delete, files_storage

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\0" * 32


def upload(api, name, data, **extra):
    return api.post("/api/files/", {"file": SimpleUploadedFile(name, data), **extra},
                    format="multipart")  # fmt: skip


def test_a_file_is_uploaded_listed_downloaded_and_deleted_by_its_owner(
    api, other_api, django_capture_on_commit_callbacks
):
    made = upload(api, "notes.txt", "héllo\n".encode())
    assert made.status_code == 201, made.json()
    record = made.json()
    assert record["name"] == "notes.txt" and record["size"] == 7
    assert record["content_type"] == "text/plain"
    assert record["reference"] == {"$file": record["id"]}
    listed = api.get("/api/files/")
    assert [f["id"] for f in listed.json()["results"]] == [record["id"]]
    assert listed["X-Files-Bytes-Used"] == "7"
    got = api.get(f"/api/files/{record['id']}/")
    assert got.status_code == 200 and b"".join(got.streaming_content) == "héllo\n".encode()
    assert got["Content-Disposition"].startswith("attachment")
    assert got["X-Content-Type-Options"] == "nosniff"
    for answer in (
        other_api.get(f"/api/files/{record['id']}/"),
        other_api.get(f"/api/files/{record['id']}/info/"),
        other_api.delete(f"/api/files/{record['id']}/"),
    ):
        assert answer.status_code == 404
    assert other_api.get("/api/files/").json()["count"] == 0
    key = StoredFile.objects.get().storage_key
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/files/{record['id']}/").status_code == 204
    assert not files_storage().exists(key)
    assert api.get(f"/api/files/{record['id']}/info/").status_code == 404
    assert not StoredFile.objects.exists()


def test_the_type_comes_from_the_bytes_not_the_name(api):
    assert upload(api, "picture.txt", PNG).json()["content_type"] == "image/png"
    assert upload(api, "data.json", b'{"a": 1}').json()["content_type"] == "application/json"
    assert upload(api, "page.html", b"<p>hi</p>").json()["content_type"] == "text/html"
    assert upload(api, "blob.txt", b"\xff\xfe\x00\x81").json()["content_type"] == (
        "application/octet-stream"
    )
    assert upload(api, "../../etc/passwd", b"x").json()["name"] == "passwd"  # no path


@override_settings(FILES_MAX_BYTES=10, FILES_QUOTA_BYTES=15)
def test_size_limit_and_quota_are_enforced_before_anything_is_stored(api, other_api):
    too_big = upload(api, "big.bin", b"x" * 11)
    assert too_big.status_code == 413 and "the limit is 10" in too_big.json()["detail"]
    assert upload(api, "a.bin", b"x" * 10).status_code == 201
    over = upload(api, "b.bin", b"x" * 6)
    assert over.status_code == 413 and "your quota is 15" in over.json()["detail"]
    assert StoredFile.objects.count() == 1
    assert upload(other_api, "c.bin", b"x" * 10).status_code == 201  # a quota per user


def test_bad_uploads_are_400(api):
    assert api.post("/api/files/", {}, format="multipart").status_code == 400
    assert api.post("/api/files/", {"file": "text"}, format="multipart").status_code == 400
    assert api.post("/api/files/", {"a": 1}, format="json").status_code == 415
    assert api.get("/api/files/not-a-uuid/").status_code == 404


def test_a_source_key_stores_once_and_old_files_are_deleted(user):
    first = file_store(owner_id=user.pk, name="a.txt", content=b"one", source_key="node:1:file")
    again = file_store(owner_id=user.pk, name="a.txt", content=b"one", source_key="node:1:file")
    assert again.pk == first.pk and StoredFile.objects.count() == 1
    StoredFile.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=400))
    assert files_expired_delete() == 1
    assert not files_storage().exists(first.storage_key)


@pytest.fixture
def s3_storage():
    """A moto S3 server on loopback, and the `files` storage pointed at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {
        "bucket_name": "agentgraph-files", "endpoint_url": f"http://127.0.0.1:{port}",
        "access_key": "test", "secret_key": "test", "region_name": "us-east-1",
    }  # fmt: skip
    boto3.client(
        "s3", endpoint_url=options["endpoint_url"], aws_access_key_id="test",
        aws_secret_access_key="test", region_name="us-east-1",
    ).create_bucket(Bucket="agentgraph-files")  # fmt: skip
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        "files": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    with override_settings(STORAGES=storages):
        yield options
    server.stop()


def test_files_in_an_s3_compatible_bucket(
    api, user, s3_storage, django_capture_on_commit_callbacks
):
    import boto3

    made = upload(api, "report.csv", b"a,b\n1,2\n")
    assert made.status_code == 201, made.json()
    stored = file_get(owner_id=user.pk, file_id=made.json()["id"])
    bucket = boto3.client(
        "s3", endpoint_url=s3_storage["endpoint_url"], aws_access_key_id="test",
        aws_secret_access_key="test", region_name="us-east-1",
    )  # fmt: skip
    keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="agentgraph-files")["Contents"]]
    assert keys == [stored.storage_key] and stored.storage_key.startswith(f"{user.pk}/")
    assert file_bytes(stored, 100) == b"a,b\n1,2\n"
    got = api.get(f"/api/files/{stored.pk}/")
    assert b"".join(got.streaming_content) == b"a,b\n1,2\n"
    with django_capture_on_commit_callbacks(execute=True):  # the bytes go once it commits
        assert api.delete(f"/api/files/{stored.pk}/").status_code == 204
    assert "Contents" not in bucket.list_objects_v2(Bucket="agentgraph-files")


@pytest.mark.django_db(transaction=True)
def test_two_stores_racing_for_the_last_of_a_quota_cannot_both_pass(user, settings):
    import threading

    from django.db import connection

    from files.services import FileRefused

    settings.FILES_QUOTA_BYTES = 15
    start, outcomes = threading.Barrier(2), []

    def store(name):
        start.wait()
        try:
            file_store(owner_id=user.pk, name=name, content=b"x" * 10)
            outcomes.append("stored")
        except FileRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=store, args=(f"{n}.bin",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "stored"] and StoredFile.objects.count() == 1
