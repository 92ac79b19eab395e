"""The docs/ pages and the references to them: no internal spec is cited, every docs link resolves,
and the paper-settings tables of docs/methods/*.md match what the configs set."""

import ast
import functools
import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED = ("coarse2fine", "configs", "benchmarks", "tests", "launch", "notebooks", "docs", "README.md")
THIS_FILE = os.path.abspath(__file__)


def _text_files():
  """(path relative to ROOT, text) of every text file under SCANNED, this file excluded."""
  for entry in SCANNED:
    top = os.path.join(ROOT, entry)
    paths = [top] if os.path.isfile(top) else (
        os.path.join(folder, name) for folder, dirs, names in os.walk(top)
        if "__pycache__" not in folder.split(os.sep) for name in names)
    for path in sorted(paths):
      if os.path.abspath(path) == THIS_FILE:
        continue
      with open(path, "rb") as f:
        data = f.read()
      if b"\0" in data:
        continue
      try:
        text = data.decode("utf-8")
      except UnicodeDecodeError:
        continue
      yield os.path.relpath(path, ROOT), text


def github_anchor(heading: str) -> str:
  """The anchor GitHub gives a heading: lowercase, punctuation other than '-' and '_' dropped,
  each space a '-'."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.lru_cache(maxsize=None)
def headings(md_path: str) -> tuple[str, ...]:
  """The heading texts of a markdown file, in order, skipping fenced code blocks."""
  out, fenced = [], False
  with open(os.path.join(ROOT, md_path), encoding="utf-8") as f:
    for line in f:
      if line.lstrip().startswith(("```", "~~~")):
        fenced = not fenced
      elif not fenced:
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
          out.append(match.group(1))
  return tuple(out)


@functools.lru_cache(maxsize=None)
def anchors(md_path: str) -> frozenset:
  """Every anchor of a markdown file; a repeated heading gets -1, -2, ... as on GitHub."""
  seen, out = {}, set()
  for heading in headings(md_path):
    anchor = github_anchor(heading)
    out.add(anchor if anchor not in seen else f"{anchor}-{seen[anchor]}")
    seen[anchor] = seen.get(anchor, 0) + 1
  return frozenset(out)


def test_github_anchor():
  assert github_anchor("Retrieval: Recall@K (MaskCon)") == "retrieval-recallk-maskcon"
  assert github_anchor("F-SC: top-1 and FGVC retrieval") == "f-sc-top-1-and-fgvc-retrieval"
  assert github_anchor("FALCON and SCAN / SCAN-C") == "falcon-and-scan--scan-c"
  assert github_anchor("Differences from SCGM's code") == "differences-from-scgms-code"
  assert github_anchor("E-step (ott-jax Sinkhorn)") == "e-step-ott-jax-sinkhorn"
  assert github_anchor("Supervised baselines: Coarse, Coarse+, Fine, Fine+") == (
      "supervised-baselines-coarse-coarse-fine-fine")


# ----------------------------------------------------------------------------- (a) no internal spec

# The internal spec was a METHODS.md in a folder users do not have, named by a relative path; absolute paths
# such as the SLURM example's workdir on storage all nodes share are not references to it. ("share[d]" keeps this
# file's own pattern out of a plain grep for the folder.)
INTERNAL = re.compile(r"METHODS\.md|(?<![\w/.-])share[d]/")


def test_no_file_cites_the_internal_spec():
  hits = [f"{path}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
          for path, text in _text_files() for m in INTERNAL.finditer(text)]
  assert not hits, "Cite docs/ instead of the internal spec:\n" + "\n".join(hits)


# ----------------------------------------------------------------------------- (b) docs references

DOCS_REF = re.compile(r"(?<![\w./-])(docs/[\w./-]*?\.md)(?:#([\w-]+))?")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _docs_references():
  for path, text in _text_files():
    for m in DOCS_REF.finditer(text):
      yield path, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)


def _check(target: str, anchor, where: str, problems: list) -> None:
  if not os.path.isfile(os.path.join(ROOT, target)):
    problems.append(f"{where}: no file {target}")
  elif anchor is not None and anchor not in anchors(target):
    problems.append(f"{where}: {target} has no heading with anchor #{anchor}")


def test_docs_references_resolve():
  problems, count = [], 0
  for path, line, target, anchor in _docs_references():
    count += 1
    _check(target, anchor, f"{path}:{line}", problems)
  assert count > 100, f"only {count} docs/ references found; is the pattern still right?"
  assert not problems, "\n".join(problems)


def test_links_between_docs_pages_resolve():
  problems, count = [], 0
  for path, text in _text_files():
    if not (path.startswith("docs" + os.sep) and path.endswith(".md")):
      continue
    for m in MD_LINK.finditer(text):
      link = m.group(1)
      if re.match(r"[a-z]+:", link):  # http:, https:, mailto:
        continue
      file_part, _, anchor = link.partition("#")
      if file_part and not file_part.endswith(".md"):
        continue
      target = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
      count += 1
      _check(target, anchor or None, f"{path}:{text.count(chr(10), 0, m.start()) + 1} ({link})", problems)
  assert count > 10
  assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------- (c) paper settings

METHOD_DOCS = sorted(f"docs/methods/{name}" for name in os.listdir(os.path.join(ROOT, "docs", "methods"))
                     if name.endswith(".md"))


def _paper_settings(md_path: str):
  """[(config, field, value text, source)] of the page's `## Paper settings` table, or None."""
  with open(os.path.join(ROOT, md_path), encoding="utf-8") as f:
    lines = f.read().split("\n")
  if "## Paper settings" not in lines:
    return None
  start = lines.index("## Paper settings")
  header = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
  assert [c.strip() for c in lines[header].strip("|").split("|")] == ["config", "field", "value", "source"]
  rows = []
  for line in lines[header + 2:]:
    if not line.startswith("|"):
      break
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    assert len(cells) == 4, f"{md_path}: {line!r}"
    rows.append(tuple(cells))
  return rows


SETTINGS = {doc: _paper_settings(doc) for doc in METHOD_DOCS}
ROWS = [(doc, *row) for doc, rows in SETTINGS.items() if rows for row in rows]


def test_paper_settings_tables_exist():
  with_table = {doc for doc, rows in SETTINGS.items() if rows}
  assert with_table >= {f"docs/methods/{m}.md" for m in ("scgm", "falcon", "maskcon", "fsc")}
  assert len(ROWS) > 200


@functools.lru_cache(maxsize=None)
def _config(name: str):
  """The config of `configs/<file>.py` for a table's "file" (default argument) or "file:argument"."""
  filename, _, arg = name.partition(":")
  path = os.path.join(ROOT, "configs", f"{filename}.py")
  spec = importlib.util.spec_from_file_location(f"docs_check_{filename}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def _same(got, want) -> bool:
  if isinstance(want, bool) or isinstance(got, bool):
    return type(got) is bool and type(want) is bool and got == want
  if isinstance(want, (tuple, list)):
    return isinstance(got, (tuple, list)) and len(got) == len(want) and all(map(_same, got, want))
  if isinstance(want, (int, float)):
    return isinstance(got, (int, float)) and got == want  # exact, also for floats
  return type(got) is type(want) and got == want


@pytest.mark.parametrize("doc,config,field,value,source", ROWS,
                         ids=[f"{os.path.basename(r[0])[:-3]}-{r[1]}-{r[2]}" for r in ROWS])
def test_paper_settings_match_the_configs(doc, config, field, value, source):
  node = _config(config)
  for part in field.split("."):
    assert part in node, f"configs/{config}.py has no field {field} ({doc})"
    node = node[part]
  want = ast.literal_eval(value)
  assert _same(node, want), f"configs/{config}.py sets {field} = {node!r}; {doc} says {want!r} ({source})"


# ----------------------------------------------------------------------------- (d) the README's commands


def _readme() -> str:
  with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
    return f.read()


def _code_blocks(text: str, language: str) -> list[str]:
  return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command():
  """The README's test command is a line of `.ci/run`, as written: what users run is what CI runs."""
  with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
    ci_lines = [line.strip() for line in f]
  commands = [line for block in _code_blocks(_readme(), "bash") for line in block.splitlines() if "pytest" in line]
  assert len(commands) == 1, f"expected one test command in the README's bash blocks, found {commands}"
  assert "python -m pytest tests" in commands[0] and '-m "not slow"' in commands[0], commands[0]
  assert commands[0].strip() in ci_lines, f".ci/run does not run the README's test command {commands[0]!r}"


def test_readme_commands_name_what_exists():
  """Every configs/ file and `python -m` module the README names exists, so its commands can run."""
  text = _readme()
  configs = set(re.findall(r"(?:`|--config=)(?:configs/)?([a-z0-9_]+\.py)\b", text))  # `NAME.py` is a placeholder
  assert "coarse_fashion_mnist.py" in configs and len(configs) > 20
  missing = [c for c in sorted(configs) if not os.path.isfile(os.path.join(ROOT, "configs", c))]
  assert not missing, f"the README names configs that do not exist: {missing}"
  modules = set(re.findall(r"python -m (coarse2fine[\w.]*)", text))
  assert {"coarse2fine.main", "coarse2fine.evaluate", "coarse2fine.plot", "coarse2fine.embed"} <= modules
  missing = [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
  assert not missing, f"the README runs modules that do not exist: {missing}"
  for link in re.findall(r"\]\(((?:benchmarks|notebooks|launch)/[^)#\s]+|LICENSE|CITATION\.cff)\)", text):
    assert os.path.exists(os.path.join(ROOT, link)), f"README links to a missing {link}"


def test_readme_hides_no_failure_and_reads_as_a_guide():
  text = _readme()
  assert "|| true" not in text, "a failed step in a README command must stop it, not be hidden"
  assert not re.search(r"^Status\b", text, flags=re.M), "the README is a guide; progress notes go in commits"


def test_citation_file_matches_the_readme_bibtex():
  """CITATION.cff parses, and cites the same papers with the same years as the README's BibTeX."""
  yaml = pytest.importorskip("yaml")
  with open(os.path.join(ROOT, "CITATION.cff"), encoding="utf-8") as f:
    cff = yaml.safe_load(f)
  assert cff["cff-version"] == "1.2.0" and cff["license"] == "Apache-2.0"
  (bibtex,) = _code_blocks(_readme(), "bibtex")
  entries = re.findall(r"@\w+\{[^@]+", bibtex)
  plain = lambda title: re.sub(r"[{}\\']", "", title).lower()  # noqa: E731
  readme_papers = {(plain(re.search(r"title\s*=\s*\{(.+?)\},?\n", e).group(1)), int(re.search(r"year\s*=\s*\{(\d+)", e)
                   .group(1))) for e in entries if not e.startswith("@software")}
  cff_papers = {(plain(r["title"]), r["year"]) for r in cff["references"]}
  assert len(cff_papers) == 5
  assert readme_papers == cff_papers


def test_licence_is_apache():
  with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as f:
    text = f.read()
  assert text.startswith("Copyright") and "The coarse2fine authors" in text.splitlines()[0]
  assert "Apache License" in text and "Version 2.0, January 2004" in text
