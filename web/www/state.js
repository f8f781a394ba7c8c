// What the page's modules share about the page as a whole.

/** The panels on show, the step the timeline shows, every model models.json lists, the cell
 * under the pointer. */
export const page = {
  panels: [],
  shown: null, // step index the timeline shows; null follows the newest step
  allSpecs: [],
  hovered: null, // {panel, index}
};
