"""Per-run report: config, final and best metrics, samples, curves, an interpolation strip."""

import datetime
import glob
import html
import os
import re

import jax

from dcgan_jax.analysis import latent
from dcgan_jax.analysis import plots

REPORT_DIR = 'report'
CURVE_TITLES = {'losses': 'Losses', 'discriminator': 'Discriminator outputs',
                'quality': 'Sample quality'}


def latest_sample_grid(workdir):
  """The sample PNG with the highest step number in workdir/samples, or None.

  The step is the last integer in the file name (e.g. samples/step_002000.png);
  names without one fall back to modification time. With replicas the grid of
  samples/ itself (a row of every seed) wins over the per-seed ones in
  samples/replica_i/, which are read only when samples/ has none.
  """
  paths = (glob.glob(os.path.join(workdir, 'samples', '*.png')) or
           glob.glob(os.path.join(workdir, 'samples', '**', '*.png'), recursive=True))
  if not paths:
    return None

  def order(path):
    numbers = re.findall(r'\d+', os.path.basename(path))
    return (int(numbers[-1]) if numbers else -1, os.path.getmtime(path))

  return max(paths, key=order)


def _format(value):
  if isinstance(value, float):
    return f'{value:.6g}'
  return str(value)


def _metric_rows(summary, metrics):
  """[(name, final, best, best_step)] from logged scalars and passed metrics."""
  rows = []
  for tag in plots.QUALITY_TAGS + plots.LOSS_TAGS + plots.D_PROB_TAGS + plots.D_ACC_TAGS:
    if tag in summary:
      entry = summary[tag]
      rows.append((tag, f"{_format(entry['final'])} (step {entry['final_step']})",
                   _format(entry['best']) if 'best' in entry else '',
                   str(entry.get('best_step', ''))))
  known = {r[0] for r in rows}
  for tag in sorted(set(summary) - known):
    entry = summary[tag]
    rows.append((tag, f"{_format(entry['final'])} (step {entry['final_step']})", '', ''))
  for name, value in (metrics or {}).items():
    rows.append((name, _format(value), '', ''))
  return rows


def write_report(workdir, config=None, generate_fn=None, metrics=None, num_rows=4, num_steps=8,
                 method='slerp', title=None, write_html=True):
  """Writes workdir/report/report.md (and report.html) for one run.

  Args:
    workdir: the run's directory (event files, samples/).
    config: the run's ConfigDict; shown in full, and its seed, latent_dim and
      latent_dist set up the interpolation.
    generate_fn: optional pure `z -> images` of the trained generator; with it
      (and a config) the report gets a latent interpolation strip.
    metrics: optional {name: value} to show in addition to the logged scalars,
      e.g. a final evaluation that was not written to TensorBoard.
    num_rows, num_steps: interpolation paths and images per path.
    method: 'slerp' or 'lerp'.
    title: page title; default the workdir's name.
    write_html: also write a self-contained-looking report.html next to it.

  Returns:
    The path of report.md.
  """
  outdir = os.path.join(workdir, REPORT_DIR)
  os.makedirs(outdir, exist_ok=True)
  title = title or f'Run report: {os.path.basename(os.path.normpath(workdir))}'
  scalars = plots.read_scalars(workdir)
  rows = _metric_rows(plots.summarize_scalars(scalars), metrics)
  images = _report_images(workdir, outdir, scalars, config, generate_fn, num_rows, num_steps,
                          method)
  page = {'title': title, 'workdir': os.path.abspath(workdir), 'rows': rows, 'images': images,
          'config': None if config is None else str(config).rstrip(),
          'created': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}
  report_path = os.path.join(outdir, 'report.md')
  with open(report_path, 'w') as f:
    f.write(_markdown(page))
  if write_html:
    with open(os.path.join(outdir, 'report.html'), 'w') as f:
      f.write(_html(page))
  return report_path


def _report_images(workdir, outdir, scalars, config, generate_fn, num_rows, num_steps, method):
  """[(heading, path relative to outdir)]: samples, curves and an interpolation strip."""
  images = []
  sample = latest_sample_grid(workdir)
  if sample:
    images.append((f'Latest samples ({os.path.basename(sample)})', os.path.relpath(sample, outdir)))
  curves = plots.plot_training_curves(workdir, outdir) if scalars else {}
  for name, path in curves.items():
    images.append((CURVE_TITLES[name], os.path.relpath(path, outdir)))
  if generate_fn is not None and config is not None:
    key = jax.random.PRNGKey(config.seed)
    z = latent.sample_latents(key, 2 * num_rows, config.model.latent_dim,
                              config.model.latent_dist)
    strip = os.path.join(outdir, f'interpolation_{method}.png')
    latent.interpolation_strip(generate_fn, z[:num_rows], z[num_rows:], num_steps, method, strip)
    images.append((f'Latent interpolation ({method}, {num_rows} paths)',
                   os.path.relpath(strip, outdir)))
  return images


def _markdown(page):
  md = [f"# {page['title']}", '', f"Workdir: `{page['workdir']}`  ",
        f"Written: {page['created']}", '', '## Metrics', '']
  if page['rows']:
    md += ['| metric | final | best | best step |', '|---|---|---|---|']
    md += [f'| {name} | {final} | {best} | {step} |' for name, final, best, step in page['rows']]
  else:
    md.append('No scalars logged yet.')
  md.append('')
  for heading, path in page['images']:
    md += [f'## {heading}', '', f'![{heading}]({path})', '']
  if page['config'] is not None:
    md += ['## Config', '', '```yaml', page['config'], '```', '']
  return '\n'.join(md)


def _html(page):
  esc = html.escape
  body = [f"<h1>{esc(page['title'])}</h1>", f"<p>Workdir: <code>{esc(page['workdir'])}</code>"
          f"<br>Written: {esc(page['created'])}</p>", '<h2>Metrics</h2>']
  if page['rows']:
    body.append('<table border="1" cellpadding="4" style="border-collapse:collapse">'
                '<tr><th>metric</th><th>final</th><th>best</th><th>best step</th></tr>')
    body += [f'<tr><td>{esc(n)}</td><td>{esc(f)}</td><td>{esc(b)}</td><td>{esc(s)}</td></tr>'
             for n, f, b, s in page['rows']]
    body.append('</table>')
  else:
    body.append('<p>No scalars logged yet.</p>')
  for heading, path in page['images']:
    body += [f'<h2>{esc(heading)}</h2>', f'<img src="{esc(path)}" alt="{esc(heading)}">']
  if page['config'] is not None:
    body += ['<h2>Config</h2>', f"<pre>{esc(page['config'])}</pre>"]
  return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
          f"<title>{esc(page['title'])}</title></head><body>\n" + '\n'.join(body) +
          '\n</body></html>\n')
