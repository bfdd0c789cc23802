// shop.js - the demo shop's glue (web/index.html): the widget is the <trilemma-chat> element;
// the rest is the shop. An external file, not an inline script: the page's Content-Security-Policy
// allows scripts from its own origin only (docs/net.md).
const chat = document.getElementById('assistant');
const params = new URLSearchParams(location.search);
if (params.has('debug')) chat.setAttribute('debug', '');
for (const b of document.querySelectorAll('[data-ask]')) {
  b.addEventListener('click', () => chat.ask(b.dataset.ask));
}
// a product card picked in the chat: offer a follow-up question about it
chat.addEventListener('trilemma-product', (e) => chat.ask(`Tell me more about the ${e.detail.title}`));
let count = 0;
const bag = document.querySelector('.bag');
for (const b of document.querySelectorAll('.add')) {
  b.addEventListener('click', () => {
    count += 1;
    bag.querySelector('.bag-count').textContent = String(count);
    bag.setAttribute('aria-label', `Bag, ${count} item${count === 1 ? '' : 's'}`);
    b.textContent = 'Added ✓';
  });
}
