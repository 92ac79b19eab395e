"""A local Cloud Storage emulator for the tests: `python tests/cloud/gcs_emulator.py PORT BUCKET`.

gcp-storage-emulator serves the JSON API that gcsfs, google-cloud-storage (tensorboardX) and
tensorstore (orbax) speak, but ignores the `ifGenerationMatch` precondition. Real Cloud Storage
answers 412 when an upload's or a delete's `ifGenerationMatch` is not the object's generation
(0: the object must not exist); this script adds exactly that to the emulator's upload and
delete handlers, so that the workdir lock's atomic create is tested as it behaves on Cloud Storage.
Prints "ready" once it serves.
"""

import logging
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


def _with_precondition(handler):
  def guarded(request, response, storage, *args, **kwargs):
    wanted = request.query.get("ifGenerationMatch")
    name = _object_name(request) if wanted else None
    if name is not None and _generation(storage, request.params["bucket_name"], name) != wanted[0]:
      response.status = HTTPStatus.PRECONDITION_FAILED
      response.json({"error": {"code": 412, "message": "At least one of the pre-conditions you specified did "
                                                       "not hold."}})
      return None
    return handler(request, response, storage, *args, **kwargs)

  return guarded


def main(port: int, bucket: str) -> None:
  for _, handlers in server.HANDLERS:
    for method, handler in list(handlers.items()):
      if handler in (objects.insert, objects.delete):
        handlers[method] = _with_precondition(handler)
  logging.basicConfig(level=logging.CRITICAL)
  emulator = server.Server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
  emulator.start()
  print("ready", flush=True)
  try:
    sys.stdin.read()  # serves until the test closes stdin (or dies)
  finally:
    emulator.stop()


if __name__ == "__main__":
  main(int(sys.argv[1]), sys.argv[2])
