// Buttons with data-busy-text say what is happening while the server works (checking a key with
// AWS takes a moment), and cannot be pressed twice. Disabled after the form data is collected,
// so the button's own name and value still reach the server.
document.addEventListener("submit", function (event) {
  var button = event.submitter;
  if (!button || !button.dataset.busyText) return;
  setTimeout(function () {
    button.disabled = true;
    button.textContent = button.dataset.busyText;
  }, 0);
});
