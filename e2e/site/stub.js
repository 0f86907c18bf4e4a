window.telltale=window.telltale||function(){(telltale.q=telltale.q||[]).push(arguments)};
