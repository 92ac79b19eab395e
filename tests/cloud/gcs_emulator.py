"""A local Cloud Storage emulator for the tests: `python tests/cloud/gcs_emulator.py PORT BUCKET`.

gcp-storage-emulator serves the JSON API that gcsfs, google-cloud-storage and tensorstore (orbax)
speak, but ignores the `ifGenerationMatch` precondition. Real Cloud Storage answers 412 when it
does not hold; this script adds that check for what the workdir lock sends: uploads with
`ifGenerationMatch=0` (create only if absent) and deletes with `ifGenerationMatch=<generation>`,
so that the lock's atomic create is tested as it behaves on Cloud Storage. Downloads also get
Cloud Storage's `x-goog-generation` header, which the emulator omits: tensorstore (orbax's OCDBT
manifests) takes an object's generation from it and otherwise fails a later conditional write with
"Malformed StorageGeneration". (Uploads with a generation other than 0 pass unchecked, as before.)
Prints "ready" once it serves.
"""

import faulthandler
import logging
import os
import signal
import sys
from http import HTTPStatus

from gcp_storage_emulator import server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects


def _generation(storage, bucket: str, name: str) -> str:
  try:
    return str(storage.get_file_obj(bucket, name)["generation"])
  except NotFound:
    return "0"


def _object_name(request):
  if "object_id" in request.params:
    return request.params["object_id"]
  if "name" in request.query:
    return request.query["name"][0]
  data = request.data
  if isinstance(data, dict):
    return (data.get("meta") or {}).get("name") or data.get("name")
  return None


def _with_precondition(handler, creates_only: bool):
  def guarded(request, response, storage, *args, **kwargs):
    wanted = request.query.get("ifGenerationMatch")
    if wanted and creates_only and wanted[0] != "0":
      wanted = None  # uploads: only "create if absent" is checked (see the module docstring)
    name = _object_name(request) if wanted else None
    if name is not None and _generation(storage, request.params["bucket_name"], name) != wanted[0]:
      response.status = HTTPStatus.PRECONDITION_FAILED
      response.json({"error": {"code": 412, "message": "At least one of the pre-conditions you specified did "
                                                       "not hold."}})
      return None
    return handler(request, response, storage, *args, **kwargs)

  return guarded


def _with_generation_headers(handler):
  """Downloads answer with the object's generation headers, as Cloud Storage does (tensorstore reads them)."""

  def download(request, response, storage, *args, **kwargs):
    try:
      obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
      response["x-goog-generation"] = str(obj["generation"])
      response["x-goog-metageneration"] = str(obj.get("metageneration", "1"))
    except NotFound:
      pass  # the handler answers 404
    return handler(request, response, storage, *args, **kwargs)

  return download


def main(port: int, bucket: str) -> None:
  for _, handlers in server.HANDLERS if not os.environ.get("C2F_EMULATOR_PLAIN") else ():
    for method, handler in list(handlers.items()):
      if handler in (objects.insert, objects.delete):
        handlers[method] = _with_precondition(handler, creates_only=handler is objects.insert)
      elif handler is objects.download:
        handlers[method] = _with_generation_headers(handler)
  objects.download = _with_generation_headers(objects.download)  # also what `get ...?alt=media` calls
  logging.basicConfig(level=logging.CRITICAL)
  if os.environ.get("C2F_EMULATOR_TRACE"):  # `kill -USR1` dumps the server's threads to this file
    faulthandler.register(signal.SIGUSR1, file=open(os.environ["C2F_EMULATOR_TRACE"], "w"), all_threads=True)
  emulator = server.Server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
  emulator.start()
  print("ready", flush=True)
  try:
    sys.stdin.read()  # serves until the test closes stdin (or dies)
  finally:
    emulator.stop()


if __name__ == "__main__":
  main(int(sys.argv[1]), sys.argv[2])
