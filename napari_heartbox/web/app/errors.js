// The one error type the browser app shows to the user as it is: a one-line
// message about the input (a file, a series), never a stack trace.
export class DicomError extends Error {}
