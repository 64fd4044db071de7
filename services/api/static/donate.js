// The donate form: a typed amount wins over the preset buttons (routes/giving_pages.py), so
// typing one unchecks them, and choosing a preset clears what was typed. Without this script
// the form still works; both could only look chosen at once.
"use strict";
const donateForm = document.querySelector("form.donate");
if (donateForm) {
  const typed = donateForm.querySelector('input[name="amount"]');
  const presets = donateForm.querySelectorAll('input[name="preset"]');
  typed.addEventListener("input", () => {
    if (typed.value.trim()) for (const preset of presets) preset.checked = false;
  });
  for (const preset of presets) preset.addEventListener("change", () => { typed.value = ""; });
}
