"""Render check of the docs site without Quarto.

Every page of `nbs/sidebar.yml` goes through nbdev's own notebook processors (the ones `nbdev_docs` runs before
Quarto: front matter, automatic `show_doc` for exported functions and classes, hidden cells removed, doc links), then
through nbconvert to HTML in `_docs_check/html/`, and headless Chromium takes screenshots of a few pages into
`_docs_check/screenshots/`. An executed experiment report (`papermill nbs/run_experiment.ipynb ... -p preset tiny`)
is rendered too. The script exits non-zero, listing every problem, when a page lacks what it should show:

* a page of the sidebar is missing, or a notebook is in no section of the sidebar;
* an exported function or class (a name of its module's `__all__`) has no docstring or no doc entry on its page;
* Quarto-only syntax, `#|` directives or error outputs leak into a page; a link to another page of the site is broken;
* the report has no figures or no table, the index has no table or no Colab badge;
* a screenshot is missing or blank.

Exported constants cannot carry a docstring: those that the page never mentions are listed as warnings.

    python .ci/render_docs.py                     # all pages, a fresh tiny report run, screenshots
    python .ci/render_docs.py --report out.ipynb  # use an executed run_experiment notebook instead of running one
    python .ci/render_docs.py --no-report --no-screenshots --pages 10_experiment.ipynb
"""
import argparse, html, importlib, inspect, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
SHOTS = ('index.ipynb', '10_experiment.ipynb', 'report', 'tutorial_extend.ipynb', 'colab_quickstart.ipynb')   # pages to photograph


def sidebar_pages()->list:
    "Notebooks listed in nbs/sidebar.yml, in order."
    import yaml
    sb = yaml.safe_load((NBS/'sidebar.yml').read_text())['website']['sidebar']['contents']
    out = []
    def walk(items):
        for it in items:
            if isinstance(it, str): out.append(it)
            elif isinstance(it, dict): walk(it.get('contents', []))
    walk(sb)
    return out


def process(src:Path, dst:Path):
    "Run nbdev's docs processors on a notebook (as `nbdev_proc_nbs` does, which would also install Quarto)."
    from execnb.nbio import read_nb, write_nb
    from nbdev.processors import FilterDefaults
    os.environ['IN_TEST'] = '1'
    cwd = os.getcwd(); os.chdir(ROOT)                    # nbdev_docs runs from the repository root
    try:
        nb = read_nb(src); FilterDefaults()(nb); write_nb(nb, dst)
    finally: os.chdir(cwd); os.environ.pop('IN_TEST', None)
    return json.loads(dst.read_text())


_DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')
_ATTR_LINK = re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}')   # Quarto link attributes: [t](u){target="_blank" ...}


def quarto_md(s:str, site:str)->str:
    "Markdown with the Quarto-only bits nbconvert cannot show turned into HTML, and site links made local."
    s = _ATTR_LINK.sub(lambda m: f'<a href="{m.group(2)}" class="srclink" target="_blank">{m.group(1)}</a>', s)
    return s.replace(site, '')


def directives(src:str)->tuple:
    "(directives dict, source without the leading directive lines)."
    lines, d = src.split('\n'), {}
    while lines and _DIRECTIVE.match(lines[0]):
        k, v = _DIRECTIVE.match(lines[0]).groups(); d[k] = v; lines.pop(0)
    return d, '\n'.join(lines)


def to_nbconvert(nb:dict, site:str)->tuple:
    "The processed notebook as nbconvert shows it (Quarto options applied), and its front matter."
    fm, cells = {}, []
    for c in nb['cells']:
        src = ''.join(c.get('source') or '')
        if c['cell_type'] == 'raw' and src.startswith('---'):
            import yaml
            fm.update(yaml.safe_load(src.strip().strip('-')) or {}); continue
        if c['cell_type'] == 'markdown':
            c['source'] = quarto_md(src, site); cells.append(c); continue
        if c['cell_type'] != 'code': continue
        d, body = directives(src)
        if d.get('include') == 'false' or 'hide' in d: continue
        c['source'] = '' if d.get('echo') == 'false' else body
        if d.get('output') == 'false': c['outputs'] = []
        for o in c.get('outputs', []):
            md = o.get('data', {}).get('text/markdown')
            if md is not None: o['data']['text/markdown'] = quarto_md(''.join(md), site)
        if not c['source'] and not c.get('outputs'): continue
        c.setdefault('metadata', {}).setdefault('tags', [])
        if not c['source']: c['metadata']['tags'].append('remove_input')
        cells.append(c)
    head = []
    if 'title' in fm: head.append(f"# {fm['title']}")
    if fm.get('description'): head.append(f"> {fm['description']}")
    if head: cells.insert(0, {'cell_type': 'markdown', 'metadata': {}, 'source': '\n\n'.join(head)})
    nb['cells'] = cells
    return nb, fm


def to_html(nb:dict, dst:Path):
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = {'remove_input'}
    c.HTMLExporter.exclude_input_prompt = c.HTMLExporter.exclude_output_prompt = True
    c.HTMLExporter.mathjax_url = ''          # the check runs offline; formulas stay as TeX
    for cell in nb['cells']: cell.pop('id', None)
    nb['nbformat'], nb['nbformat_minor'] = 4, 4
    node = nbformat.reads(json.dumps(nb), as_version=4)   # multi-line strings stored as lists are joined
    for cell in node.cells:                                # progress bars: what a notebook viewer shows after each '\r'
        outs = []
        for o in cell.get('outputs', []):
            if o.get('output_type') == 'stream' and outs and outs[-1].get('output_type') == 'stream' and outs[-1].name == o.name:
                outs[-1].text += o.text
            else: outs.append(o)
        for o in outs:
            if o.get('output_type') == 'stream':
                o.text = '\n'.join(l.rstrip('\r').rsplit('\r', 1)[-1] for l in o.text.split('\n'))
        if 'outputs' in cell: cell.outputs = outs
    body, _ = HTMLExporter(config=c, template_name='lab').from_notebook_node(node)
    css = (NBS/'styles.css').read_text() if (NBS/'styles.css').is_file() else ''
    body = body.replace('</head>', f'<style>{css}\n.srclink{{float:right;font-size:smaller}} body{{max-width:1100px;margin:auto}}\n.jp-RenderedMarkdown pre{{background:#f6f6f6;padding:.6em .8em;border-radius:4px;margin:.4em 0 1em}}</style></head>', 1)
    dst.write_text(body, encoding='utf-8')
    return body


def text_of(h:str)->str:
    "Visible text of an HTML page (scripts and styles removed)."
    h = re.sub(r'<(script|style)[^>]*>.*?</\1>', ' ', h, flags=re.S)
    return html.unescape(re.sub(r'<[^>]+>', ' ', h))


def has_docstring(obj, name)->bool:
    doc = obj.__dict__.get('__doc__') if inspect.isclass(obj) else getattr(obj, '__doc__', None)
    if inspect.isclass(obj) and doc and doc.startswith(f'{name}('): doc = None   # a dataclass's generated signature
    return bool(doc and doc.strip())


def check_api(page:str, nb:dict|None, # the notebook as nbdev processed it (show_doc cells still in place); None: it failed
              h:str, problems:list, warnings:list, coverage:dict):
    "Every name of the page's module `__all__`: a docstring and a doc entry (functions, classes) or a mention (constants)."
    src = (NBS/page).read_text()
    nb = nb or {'cells': []}
    m = re.search(r'#\|\s*default_exp\s+([\w.]+)', src)
    if not m: return
    mod = importlib.import_module(f'aura.{m.group(1)}')
    shown = set()
    for c in nb['cells']:
        s = ''.join(c.get('source') or '')
        k = re.search(r'show_doc\(([\w.]+)\)', s)
        if k and any('text/markdown' in o.get('data', {}) for o in c.get('outputs', [])): shown.add(k.group(1))
    heads = set(re.findall(r'<h[2-4][^>]*>\s*([\w.]+)', h))
    visible = text_of(h)
    rows = []
    for name in getattr(mod, '__all__', []):
        obj = getattr(mod, name)
        kind = 'class' if inspect.isclass(obj) else 'function' if callable(obj) and not isinstance(obj, dict) else 'constant'
        doc = has_docstring(obj, name) if kind != 'constant' else None
        if doc is False: problems.append(f'{page}: {mod.__name__}.{name} ({kind}) has no docstring')
        entry = None if not h else (name in shown and name in heads) if kind != 'constant' else bool(re.search(rf'\b{re.escape(name)}\b', visible))
        rows.append((name, kind, doc, entry))
        if entry is None: continue   # the page did not render: only docstrings are checked
        if kind != 'constant':
            if not entry: problems.append(f'{page}: {mod.__name__}.{name} ({kind}) has no doc entry (show_doc) on the page')
        elif not entry: warnings.append(f'{page}: constant {mod.__name__}.{name} is never mentioned on the page')
    coverage[mod.__name__] = rows


def check_page(page:str, h:str, nb:dict, fm:dict, problems:list, pages_html:set):
    t = text_of(h)
    if not fm.get('title') and '<h1' not in h: problems.append(f'{page}: no title')
    if re.search(r'^\s*#\|', t, re.M): problems.append(f'{page}: a #| directive is visible')
    if re.search(r'\]\([^)]*\)\{|\{target=', t): problems.append(f'{page}: Quarto link attributes are visible')
    for c in nb['cells']:
        for o in c.get('outputs', []):
            if o.get('output_type') == 'error': problems.append(f"{page}: error output {o.get('ename')}: {o.get('evalue')}")
    for link in set(re.findall(r'href="([\w.-]+\.html)(?:#[^"]*)?"', h)):
        if link not in pages_html: problems.append(f'{page}: link to {link}, which is not a page of the site')


def screenshot(chrome:str, page:Path, png:Path, problems:list, height:int=14000):
    "A full-page PNG of `page` (a tall window, then the blank space below the page cropped); the share of non-white pixels."
    cmd = [chrome, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--no-first-run',
           '--force-device-scale-factor=1', f'--window-size=1280,{height}', '--virtual-time-budget=4000',
           f'--screenshot={png}', page.resolve().as_uri()]
    png.unlink(missing_ok=True)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if not png.is_file() or png.stat().st_size < 10_000: problems.append(f'screenshot of {page.name} failed: {r.stderr[-300:]}'); return
    import matplotlib.image as mpimg
    im = mpimg.imread(png)[..., :3]
    rows = (im.mean(-1) < 0.99).any(1).nonzero()[0]
    if len(rows): im = im[:min(len(im), rows.max() + 40)]; mpimg.imsave(png, im)
    if len(rows) and rows.max() > height - 50: print(f'note: {page.name} is taller than {height} px; the screenshot shows its top')
    ink = float((im.mean(-1) < 0.9).mean())
    if ink < 0.01: problems.append(f'screenshot {png.name} is blank ({ink:.2%} non-white pixels)')
    return ink


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=str(ROOT/'_docs_check'), help='output folder (ignored by git)')
    ap.add_argument('--pages', nargs='*', help='only these notebooks (default: every page of the sidebar)')
    ap.add_argument('--report', help='an executed run_experiment notebook (default: run one with papermill, preset tiny)')
    ap.add_argument('--no-report', action='store_true', help='skip the experiment report')
    ap.add_argument('--no-screenshots', action='store_true')
    a = ap.parse_args()
    t0 = time.time()
    out = Path(a.out); proc, hdir, sdir = out/'proc', out/'html', out/'screenshots'
    for d in (proc, hdir, sdir): d.mkdir(parents=True, exist_ok=True)
    from nbdev.config import get_config
    cfg = get_config(); site = f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip('/') + '/'
    problems, warnings, coverage, rendered = [], [], {}, {}

    listed = sidebar_pages()
    for p in listed:
        if not (NBS/p).is_file(): problems.append(f'sidebar.yml lists {p}, which does not exist')
    for p in sorted(NBS.glob('*.ipynb')):
        if not p.name.startswith('_') and p.name not in listed: problems.append(f'{p.name} is in no section of sidebar.yml')
    pages = [p for p in (a.pages or listed) if (NBS/p).is_file()]
    from nbdev.frontmatter import _nbpath2html
    pages_html = {_nbpath2html(NBS/p).name for p in listed if (NBS/p).is_file()} | {'report.html'}
    seen = {}
    for p in sorted(NBS.glob('*.ipynb')):
        if p.name.startswith('_'): continue
        k = _nbpath2html(p).name
        if k in seen: problems.append(f'{seen[k]} and {p.name} both become {k} on the site: one page hides the other')
        seen[k] = p.name

    for p in pages:
        t = time.time()
        try: raw = process(NBS/p, proc/p)
        except Exception as e:   # nbdev_docs stops on the same error
            cause = f' ({type(e.__cause__).__name__}: {e.__cause__})' if e.__cause__ else ''
            problems.append(f"{p}: nbdev's docs processing fails{cause}: {str(e).splitlines()[0]} {str(e).splitlines()[1:2]}")
            print(f'{p:32s} FAILED in nbdev processing{cause}', flush=True)
            check_api(p, None, '', problems, warnings, coverage); continue
        nb, fm = to_nbconvert(json.loads(json.dumps(raw)), site)
        name = _nbpath2html(NBS/p).name
        h = to_html(nb, hdir/name)
        check_page(p, h, nb, fm, problems, pages_html)
        check_api(p, raw, h, problems, warnings, coverage)
        rendered[p] = hdir/name
        print(f'{p:32s} -> html/{name:28s} {time.time() - t:5.1f} s', flush=True)

    if 'index.ipynb' in rendered:
        h = rendered['index.ipynb'].read_text()
        if '<table' not in h: problems.append('index: no table')
        if 'colab.research.google.com' not in h: problems.append('index: no Open in Colab link')

    if not a.no_report:
        t = time.time()
        rep = Path(a.report) if a.report else out/'report.ipynb'
        if not a.report:
            env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'}
            r = subprocess.run([sys.executable, '-m', 'papermill', str(NBS/'run_experiment.ipynb'), str(rep), '-p', 'preset', 'tiny',
                                '-p', 'output_dir', str(out/'outputs'), '--cwd', str(NBS)], env=env, capture_output=True, text=True)
            if r.returncode: problems.append(f'papermill run_experiment (tiny) failed: {r.stderr[-800:]}')
        if rep.is_file():
            nb = process(rep, proc/'report.ipynb')
            nb, fm = to_nbconvert(nb, site)
            h = to_html(nb, hdir/'report.html'); rendered['report'] = hdir/'report.html'
            check_page('report', h, nb, fm, problems, pages_html)
            imgs = len(re.findall(r'<img[^>]+src="data:image/png', h))
            if imgs < 5: problems.append(f'report: {imgs} figures, expected at least 5')
            if '<table' not in h: problems.append('report: no table')
            for k in ('L1_olid', 'L2_jigsaw', 'L3_toxigen', 'macro_f1'):
                if k not in h: problems.append(f'report: {k} not shown')
            print(f'report: {imgs} figures, {h.count("<table")} tables, {time.time() - t:.1f} s', flush=True)

    shots = {}
    if not a.no_screenshots:
        chrome = os.environ.get('CHROMIUM') or next((shutil.which(c) for c in ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable') if shutil.which(c)), None)
        if not chrome: problems.append('no Chromium found (apt-get install chromium, or set CHROMIUM)')
        else:
            for k in SHOTS:
                if k not in rendered: continue
                png = sdir/(rendered[k].stem + '.png')
                ink = screenshot(chrome, rendered[k], png, problems)
                if ink is not None: shots[k] = png; print(f'screenshot {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png} ({ink:.1%} ink)')

    print('\n== docs coverage (module: names in __all__; docstring and doc entry of functions/classes; mentions of constants) ==')
    for mod, rows in coverage.items():
        fc = [r for r in rows if r[1] != 'constant']; cs = [r for r in rows if r[1] == 'constant']
        if rows and rows[0][3] is None:
            print(f'{mod:18s} {len(rows):3d} names: functions/classes with a docstring {sum(r[2] for r in fc)}/{len(fc)}; page not rendered'); continue
        print(f'{mod:18s} {len(rows):3d} names: functions/classes with a docstring {sum(r[2] for r in fc)}/{len(fc)}, '
              f'with a doc entry {sum(r[3] for r in fc)}/{len(fc)}; constants mentioned {sum(r[3] for r in cs)}/{len(cs)}')
    for w in warnings: print('warning:', w)
    print(f'\n{len(rendered)} pages rendered to {hdir}, {len(shots)} screenshots in {sdir}, {time.time() - t0:.0f} s')
    if problems:
        print(f'\n{len(problems)} problem(s):'); [print(' -', p) for p in problems]
        sys.exit(1)
    print('docs render check passed')


if __name__ == '__main__': main()
