(longest) => {
  /* The layout measures of tests/e2e/layout.py: called with the longest word that must stay whole. */
  const edge = document.documentElement.clientWidth + 1;
  const hidden = (e) => e.closest('.visually-hidden, .skip-link, [hidden], script, style, option, title');
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
      + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\s+/).join('.') : '');
  // Inside a clipped box (the table headers kept for screen readers on phones): not seen.
  const clipped = (e) => {
    for (let a = e; a; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.clipPath !== 'none' || s.clip !== 'auto') return true;
    }
    return false;
  };
  const wide = [];
  for (const e of document.querySelectorAll('body *')) {
    if (hidden(e)) continue;
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.height > 0 && r.right > edge && !clipped(e)) wide.push(name(e) + ' right=' + Math.round(r.right));
  }
  const split = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || hidden(parent)) continue;
    const text = node.textContent;
    for (const m of text.matchAll(/\S+/g)) {
      if (m[0].length < 2 || m[0].length > longest) continue;
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set([...range.getClientRects()].filter((q) => q.width > 0)
        .map((q) => Math.round(q.bottom)));
      if (tops.size > 1 && !clipped(parent)) split.push('"' + m[0] + '" in ' + name(parent));
    }
  }
  return {wide: wide.slice(-5), split: split.slice(0, 8), scroll: document.documentElement.scrollWidth,
          width: document.documentElement.clientWidth};
}
