// Example host page logic: the embedding API and the DOM event.
import { findHeartSector, SECTOR_EVENT } from './heartbox.js';

const $ = (id) => document.getElementById(id);
$('upload').addEventListener('submit', (e) => e.preventDefault()); // demo only: nothing is sent

document.addEventListener(SECTOR_EVENT, (e) => {
  $('event-result').textContent = JSON.stringify(e.detail.sector, null, 2);
});

$('series').addEventListener('change', async (e) => {
  document.body.dataset.state = 'running';
  $('host-status').textContent = 'Finding the heart sector locally…';
  try {
    const sector = await findHeartSector(e.target.files, {
      onProgress: (m) => { $('host-status').textContent = `${m.phase}: ${m.done}/${m.total}`; },
    });
    $('api-result').textContent = JSON.stringify(sector, null, 2);
    if (sector.found) {
      const v = sector.voxel;
      $('heart_z').value = v.z.join(','); $('heart_y').value = v.y.join(','); $('heart_x').value = v.x.join(',');
      $('upload-slices').textContent = `${v.z[1] - v.z[0]} of ${sector.shape[0]} (z ${v.z[0]}..${v.z[1] - 1}, index 0 = most inferior)`;
      $('host-status').textContent = 'Heart sector found.';
    } else {
      $('upload-slices').textContent = 'none: no heart in view';
      $('host-status').textContent = 'No heart in view.';
    }
    document.body.dataset.state = 'done';
  } catch (err) {
    $('host-status').textContent = err.message;
    document.body.dataset.state = 'error';
  }
});
