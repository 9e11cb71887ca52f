// Sends one message through an SMTP server with Nodemailer, as a Node.js service would.
// Usage: node send.js PORT CA_FILE USER PASSWORD FROM TO SUBJECT
"use strict";
const fs = require("fs");
const nodemailer = require("nodemailer");

const [port, caFile, user, pass, from, to, subject] = process.argv.slice(2);
const transport = nodemailer.createTransport({
  host: "127.0.0.1",
  port: Number(port),
  secure: false,
  requireTLS: true,
  tls: { ca: [fs.readFileSync(caFile)], servername: "localhost" },
  auth: { user, pass },
});
transport
  .sendMail({ from, to, subject, text: "sent by Nodemailer" })
  .then((info) => {
    console.log(info.response);
    transport.close();
  })
  .catch((err) => {
    console.error(String(err));
    process.exit(1);
  });
